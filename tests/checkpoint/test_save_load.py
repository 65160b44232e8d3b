"""lmhub.save_checkpoint / load_checkpoint: HF layout, tied weights, atomic saves, all families."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
import lmhub.checkpoint.writers as writers
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.save_load import TIED_METADATA_KEY, model_tensors


def _tiny_config(family: str, **overrides: Any) -> Any:
    fam = lmhub.get_family(family)
    arch = next((a for a in fam.archs.names() if a.endswith("_tiny")), fam.archs.names()[0])
    config = fam.archs.get(arch)
    config.num_layers = 2
    return lmhub.apply_overrides(config, overrides)


def _tiny(family: str, *, seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    hub = lmhub.get_model_hub(family)
    return hub.create_new_model(_tiny_config(family, **overrides)).eval()


def _logits(model: Any) -> torch.Tensor:
    ids = torch.arange(12).reshape(2, 6) % model.config.vocab_size
    # An encoder-decoder also reads target tokens.
    extra = {"decoder_input_ids": ids[:, :4]} if getattr(model, "is_encoder_decoder", False) else {}
    with torch.no_grad():
        return model(ids, **extra)


@pytest.mark.parametrize("family", lmhub.list_families())
def test_round_trip_into_a_meta_model_for_every_family(tmp_path: Path, family: str) -> None:
    model = _tiny(family)
    lmhub.save_checkpoint(tmp_path, model)
    assert (tmp_path / "model.safetensors").is_file()
    empty = lmhub.get_model_hub(family).create_new_model(model.config, meta=True)
    loaded = lmhub.load_checkpoint(tmp_path, empty).eval()
    assert loaded is empty
    assert not any(t.is_meta for t in loaded.state_dict().values())
    assert torch.equal(_logits(loaded), _logits(model))
    assert model_tensors(loaded)[1] == model_tensors(model)[1]  # the same ties


def test_tied_parameters_are_stored_once_and_tied_again(tmp_path: Path) -> None:
    model = _tiny("llama", tie_embeddings=True)
    lmhub.save_checkpoint(tmp_path, model)
    with open_checkpoint(tmp_path) as reader:
        assert "lm_head.weight" not in set(reader.keys())
        assert json.loads(reader.metadata()[TIED_METADATA_KEY]) == {
            "lm_head.weight": "embed.weight"
        }
    # Even a model built untied comes back tied, as the checkpoint records.
    untied = _tiny("llama", seed=1, tie_embeddings=False)
    lmhub.load_checkpoint(tmp_path, untied)
    assert untied.lm_head.weight is untied.embed.weight
    assert torch.equal(_logits(untied), _logits(model))


def test_load_into_a_materialised_model_copies_in_place(tmp_path: Path) -> None:
    source = _tiny("llama")
    lmhub.save_checkpoint(tmp_path, source)
    target = _tiny("llama", seed=1)
    params = dict(target.named_parameters())
    lmhub.load_checkpoint(tmp_path, target)
    assert all(p is params[n] for n, p in target.named_parameters())  # optimizers keep working
    assert torch.equal(_logits(target), _logits(source))


def test_sharded_save_writes_an_index_and_loads_back(tmp_path: Path) -> None:
    model = _tiny("llama")
    files = lmhub.save_checkpoint(tmp_path, model, max_shard_size="300KB")
    assert len(files) > 2 and (tmp_path / "model.safetensors.index.json").is_file()
    empty = lmhub.get_model_hub("llama").create_new_model(model.config, meta=True)
    assert torch.equal(_logits(lmhub.load_checkpoint(tmp_path, empty)), _logits(model))


def test_a_crash_mid_save_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _tiny("llama")
    lmhub.save_checkpoint(tmp_path / "ckpt", old, max_shard_size="300KB")
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    calls = {"n": 0}
    real = writers._write_shard

    def crash_on_second_shard(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(*args, **kwargs)

    monkeypatch.setattr(writers, "_write_shard", crash_on_second_shard)
    with pytest.raises(OSError, match="disk full"):
        lmhub.save_checkpoint(tmp_path / "ckpt", _tiny("llama", seed=1), max_shard_size="300KB")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging left behind
    empty = lmhub.get_model_hub("llama").create_new_model(old.config, meta=True)
    assert torch.equal(_logits(lmhub.load_checkpoint(tmp_path / "ckpt", empty)), _logits(old))


def test_every_mismatch_is_reported_at_once(tmp_path: Path) -> None:
    lmhub.save_checkpoint(tmp_path, _tiny("llama"))
    other = _tiny("llama", num_layers=3, ffn_inner_dim=64)
    with pytest.raises(lmhub.StateDictMismatchError) as info:
        lmhub.load_checkpoint(tmp_path, other)
    err = info.value
    assert any(k.startswith("layers.2.") for k in err.missing)
    assert {k for k, _, _ in err.shape_mismatches} >= {"layers.0.ffn.up_proj.weight"}


def test_loads_hugging_face_names_and_prefixed_keys(tmp_path: Path) -> None:
    model = _tiny("llama")
    hf_keys = dict(
        lmhub.get_family("llama").weight_map.convert_to_external(model_tensors(model)[0].items())
    )
    writers.save_safetensors_sharded({k: v.clone() for k, v in hf_keys.items()}, tmp_path / "hf")
    lmhub.save_checkpoint(tmp_path / "prefixed", model, key_prefix="model.")
    for name in ("hf", "prefixed"):
        empty = lmhub.get_model_hub("llama").create_new_model(model.config, meta=True)
        assert torch.equal(_logits(lmhub.load_checkpoint(tmp_path / name, empty)), _logits(model))


def test_saving_a_meta_model_is_an_error(tmp_path: Path) -> None:
    hub = lmhub.get_model_hub("llama")
    meta = hub.create_new_model(_tiny_config("llama"), meta=True)
    with pytest.raises(lmhub.ModelCheckpointError, match="meta device"):
        lmhub.save_checkpoint(tmp_path, meta)
    assert not any(tmp_path.iterdir())


def test_a_loaded_model_saves_again(tmp_path: Path) -> None:
    # Loaded tensors are views of one buffer per file; saving them must still work.
    model = _tiny("deepone")
    lmhub.save_checkpoint(tmp_path / "a", model)
    empty = lmhub.get_model_hub("deepone").create_new_model(model.config, meta=True)
    lmhub.save_checkpoint(tmp_path / "b", lmhub.load_checkpoint(tmp_path / "a", empty))
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
