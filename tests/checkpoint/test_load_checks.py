"""Loading refuses checkpoints whose tied-weight record or dtypes do not fit the model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lmhub
from lmhub.checkpoint.layout import LAYOUT_METADATA_KEY, TIED_METADATA_KEY
from lmhub.checkpoint.state import model_tensors
from lmhub.checkpoint.writers import save_safetensors_sharded
from lmhub.errors import LmhubError, ModelCheckpointError, TensorDtypeMismatchError


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    hub = lmhub.get_model_hub("llama")
    config = lmhub.apply_overrides(hub.get_arch_config("llama_tiny"), ["num_layers=1"])
    return hub.create_new_model(config).eval()


def _empty(model: torch.nn.Module) -> torch.nn.Module:
    return lmhub.get_model_hub("llama").create_new_model(model.config, meta=True)


def _save(directory: Path, tensors: dict[str, torch.Tensor], tied: str | None) -> None:
    metadata = {LAYOUT_METADATA_KEY: "native"}
    if tied is not None:
        metadata[TIED_METADATA_KEY] = tied
    save_safetensors_sharded(
        {k: v.clone() for k, v in tensors.items()}, directory, metadata=metadata
    )


@pytest.mark.parametrize(
    ("tied", "match"),
    [
        ("{not json", "not a JSON object"),
        ('["lm_head.weight", "embed.weight"]', "not a JSON object"),
        ('{"lm_head.weight": 3}', "not a JSON object"),
        ("[" * 100_000, "not a JSON object"),
        ('{"nope.weight": "embed.weight"}', "'nope.weight' is not a tensor"),
        ('{"lm_head.weight": "nope.weight"}', "'nope.weight' is not a tensor"),
        ('{"lm_head.weight": "final_norm.weight"}', "has shape"),
        ('{"lm_head.weight": "embed.weight", "embed.weight": "lm_head.weight"}', "itself tied"),
        ('{"lm_head.weight": "lm_head.weight"}', "itself tied"),
    ],
)
def test_a_bad_tied_record_is_refused(tmp_path: Path, tied: str, match: str) -> None:
    model = _tiny()
    tensors = model_tensors(model)[0]
    tensors.pop("lm_head.weight")
    _save(tmp_path, tensors, tied)
    empty = _empty(model)
    with pytest.raises(ModelCheckpointError, match=match) as info:
        lmhub.load_checkpoint(tmp_path, empty)
    assert info.value.path == tmp_path


def test_a_valid_tied_record_ties(tmp_path: Path) -> None:
    model = _tiny()
    tensors = model_tensors(model)[0]
    tensors.pop("lm_head.weight")
    _save(tmp_path, tensors, json.dumps({"lm_head.weight": "embed.weight"}))
    loaded = lmhub.load_checkpoint(tmp_path, _empty(model))
    assert loaded.lm_head.weight is loaded.embed.weight
    assert not any(t.is_meta for t in loaded.state_dict().values())


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool])
@pytest.mark.parametrize("meta", [True, False])
def test_an_integer_tensor_for_a_float_weight_is_refused(
    tmp_path: Path, dtype: torch.dtype, meta: bool
) -> None:
    model = _tiny()
    tensors = model_tensors(model)[0]
    tensors["final_norm.weight"] = torch.ones_like(tensors["final_norm.weight"], dtype=dtype)
    _save(tmp_path, tensors, None)
    target = _empty(model) if meta else _tiny(seed=1)
    with pytest.raises(TensorDtypeMismatchError, match=r"'final_norm\.weight'") as info:
        lmhub.load_checkpoint(tmp_path, target)
    assert info.value.mismatches == [("final_norm.weight", torch.float32, dtype)]
    assert str(dtype) in str(info.value)


def test_a_float_tensor_of_another_float_dtype_is_cast(tmp_path: Path) -> None:
    model = _tiny()
    tensors = {k: v.to(torch.float16) for k, v in model_tensors(model)[0].items()}
    _save(tmp_path, tensors, None)
    loaded = lmhub.load_checkpoint(tmp_path, _empty(model))
    assert loaded.embed.weight.dtype == torch.float32
    assert torch.equal(loaded.embed.weight, tensors["embed.weight"].float())


_names = st.sampled_from(["lm_head.weight", "embed.weight", "final_norm.weight", "x", ""])
_tied_json = st.one_of(
    st.dictionaries(_names, st.one_of(_names, st.integers(), st.none()), max_size=3).map(
        json.dumps
    ),
    st.recursive(
        st.one_of(st.none(), st.integers(), st.text(max_size=5)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    ).map(json.dumps),
    st.text(max_size=20),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(tied=_tied_json)
def test_fuzzed_tied_records_only_raise_lmhub_errors(tied: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        model = _tiny()
        tensors = model_tensors(model)[0]
        tensors.pop("lm_head.weight")
        _save(Path(directory), tensors, tied)
        try:
            loaded = lmhub.load_checkpoint(directory, _empty(model))
        except LmhubError:
            return
        assert not any(t.is_meta for t in loaded.state_dict().values())
        assert loaded.lm_head.weight is loaded.embed.weight
