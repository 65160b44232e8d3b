"""MODEL arguments: checkpoint directories, cards (with or without local weights), presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.errors import LmhubError, ModelCheckpointError, ModelNotKnownError
from lmhub.models.resolve import instantiate, load_source_tokenizer, resolve_model_source
from tests.oracle.hf_models import save_tiny_hf_llama


def test_checkpoint_directory(tmp_path: Path) -> None:
    hf = save_tiny_hf_llama(tmp_path)
    source = resolve_model_source(str(tmp_path))
    assert source.kind == "checkpoint" and source.checkpoint == tmp_path
    assert source.tokenizer is None and "random" not in source.label
    model = instantiate(source)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max() <= 1e-5


def test_cards_with_and_without_local_weights(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path / "w")
    shrink = (
        "model_config: {vocab_size: 160, model_dim: 64, ffn_inner_dim: 96, num_layers: 2, "
        "num_heads: 4, num_kv_heads: 2, max_seq_len: 64}\n"
    )
    (tmp_path / "c.yaml").write_text(
        f"name: local\nmodel_family: llama\nmodel_arch: llama_tiny\n{shrink}checkpoint: ./w\n"
        "---\nname: random_only\nmodel_family: llama\nmodel_arch: llama_tiny\n"
        "model_config: {num_layers: 1}\n"
        "---\nname: gone\nmodel_family: llama\nmodel_arch: llama_tiny\ncheckpoint: ./missing\n"
    )
    lmhub.register_cards(tmp_path / "c.yaml")
    local = resolve_model_source("local")
    assert local.kind == "card" and local.checkpoint == tmp_path / "w"
    assert instantiate(local).config.vocab_size == 160
    random_only = resolve_model_source("random_only")
    assert random_only.checkpoint is None and "random weights" in random_only.label
    assert len(instantiate(random_only).layers) == 1
    with pytest.raises(ModelCheckpointError, match="missing"):
        resolve_model_source("gone")


def test_preset_named_like_a_card_without_local_weights_falls_back_to_random() -> None:
    # The shipped llama3_2_1b card points at the HF cache, which is empty in tests.
    source = resolve_model_source("llama3_2_1b")
    assert source.kind == "arch" and source.checkpoint is None
    assert source.config.model_dim == 2048


def test_unknown_names_and_tokenizers(tmp_path: Path) -> None:
    with pytest.raises(ModelNotKnownError, match="Did you mean 'llama_tiny'"):
        resolve_model_source("llama_tiyn")
    assert load_source_tokenizer(resolve_model_source("llama_tiny")) is None


# -- one resolver: lmhub.load_model and the CLI agree on what a name is ------------------------


def test_load_model_and_the_cli_resolve_names_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. An existing directory wins over the card and the preset of the same name.
    monkeypatch.chdir(tmp_path)
    save_tiny_hf_llama(tmp_path / "llama_tiny")
    assert resolve_model_source("llama_tiny").kind == "checkpoint"
    assert lmhub.load_model("llama_tiny").config.vocab_size == 160
    monkeypatch.chdir(tmp_path / "llama_tiny")
    # 2. A card with local weights.
    (tmp_path / "c.yaml").write_text(
        "name: mine\nmodel_family: llama\nmodel_arch: llama_tiny\nmodel_config: {vocab_size: "
        "160, model_dim: 64, ffn_inner_dim: 96, num_layers: 2, num_heads: 4, num_kv_heads: 2, "
        f"max_seq_len: 64}}\ncheckpoint: {tmp_path / 'llama_tiny'}\n"
        "---\nname: gone\nmodel_family: llama\nmodel_arch: llama_tiny\ncheckpoint: ./missing\n"
    )
    lmhub.register_cards(tmp_path / "c.yaml")
    assert resolve_model_source("mine").kind == "card"
    assert lmhub.load_model("mine").config.model_dim == 64
    # A card whose weights are missing is an error on both paths...
    with pytest.raises(ModelCheckpointError, match="missing"):
        resolve_model_source("gone")
    with pytest.raises(ModelCheckpointError, match="missing"):
        lmhub.load_model("gone")
    # ...unless a preset of its name stands in: random weights for the CLI, not for load_model.
    assert resolve_model_source("llama3_2_1b").kind == "arch"
    with pytest.raises(LmhubError, match=r"Llama-3\.2-1B.*not in the local cache"):
        lmhub.load_model("llama3_2_1b")
    # 3. A preset (its shipped card has no checkpoint): load_model says how to get weights.
    assert resolve_model_source("llama_tiny").kind == "arch"
    with pytest.raises(lmhub.AssetCardError, match=r"names no checkpoint.*create_new_model"):
        lmhub.load_model("llama_tiny")
    with pytest.raises(ModelNotKnownError):
        lmhub.load_model("no_such_model")


# -- dtype=None: loads keep the stored dtype, new models the declared (else default) one -------


@pytest.fixture
def bf16_dir_declaring_fp16(tmp_path: Path) -> Path:
    directory = tmp_path / "ckpt"
    save_tiny_hf_llama(directory, dtype=torch.bfloat16)
    config_path = directory / "config.json"
    data = json.loads(config_path.read_text())
    data["dtype"] = data["torch_dtype"] = "float16"  # declared differs from stored on purpose
    config_path.write_text(json.dumps(data))
    return directory


def _dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in model.parameters()}


def test_dtype_none_keeps_the_stored_dtype_on_every_load_path(
    bf16_dir_declaring_fp16: Path, tmp_path: Path
) -> None:
    directory = bf16_dir_declaring_fp16
    source = resolve_model_source(str(directory))
    assert source.dtype == torch.float16  # what config.json declares
    hub = lmhub.get_model_hub("llama")
    (tmp_path / "card.yaml").write_text(
        "name: bf16\nmodel_family: llama\nmodel_arch: llama_tiny\nmodel_config: {vocab_size: "
        "160, model_dim: 64, ffn_inner_dim: 96, num_layers: 2, num_heads: 4, num_kv_heads: 2, "
        f"max_seq_len: 64}}\ncheckpoint: {directory}\n"
    )
    lmhub.register_cards(tmp_path / "card.yaml")
    loaded = {
        "load_model(dir)": lmhub.load_model(directory),
        "load_model(card)": lmhub.load_model("bf16"),
        "instantiate": instantiate(source),
        "hub.load_custom_model": hub.load_custom_model(directory, source.config),
        "hub.load_model": hub.load_model("bf16"),
    }
    for path, model in loaded.items():
        assert _dtypes(model) == {torch.bfloat16}, path
    assert _dtypes(lmhub.load_model(directory, dtype="float32")) == {torch.float32}


def test_dtype_none_gives_new_models_the_declared_else_the_default_dtype(
    bf16_dir_declaring_fp16: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from lmhub.cli.main import main

    hub = lmhub.get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    assert _dtypes(hub.create_new_model(config)) == {torch.float32}
    assert _dtypes(instantiate(resolve_model_source("llama_tiny"))) == {torch.float32}
    with lmhub.default_dtype("bfloat16"):
        assert _dtypes(hub.create_new_model(config)) == {torch.bfloat16}
    # A checkpoint directory's declared dtype is the one new weights get (model construct
    # without --save-checkpoint initialises new weights); loaded weights keep the stored one.
    new, loaded = tmp_path / "new", tmp_path / "loaded"
    source = str(bf16_dir_declaring_fp16)
    assert main(["model", "construct", source, "-o", str(new), "--device", "cpu"]) == 0
    argv = ["model", "construct", source, "-o", str(loaded), "--device", "cpu"]
    assert main([*argv, "--save-checkpoint"]) == 0
    capsys.readouterr()
    assert json.loads((new / "config.json").read_text())["dtype"] == "float16"
    assert json.loads((loaded / "config.json").read_text())["dtype"] == "bfloat16"
