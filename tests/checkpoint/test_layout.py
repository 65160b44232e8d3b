"""A checkpoint's naming layout is decided once, from lmhub metadata or from all its names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.checkpoint.layout import (
    LAYOUT_METADATA_KEY,
    PREFIX_METADATA_KEY,
    REMOTE_WEIGHT_PREFIX,
    CheckpointLayout,
    decide_layout,
)
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.state import model_tensors
from lmhub.checkpoint.writers import save_safetensors_sharded
from lmhub.errors import CheckpointLayoutError, StateDictMismatchError

WEIGHT_MAP = lmhub.get_family("llama").weight_map


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    hub = lmhub.get_model_hub("llama")
    config = lmhub.apply_overrides(hub.get_arch_config("llama_tiny"), ["num_layers=1"])
    return hub.create_new_model(config)


def _names(model: torch.nn.Module) -> set[str]:
    return set(model.state_dict())


def test_lmhub_metadata_decides_even_when_the_weight_map_would_match() -> None:
    model = _tiny()
    hf_keys = [WEIGHT_MAP.to_external(k) or k for k in _names(model)]
    layout = decide_layout(hf_keys, {LAYOUT_METADATA_KEY: "native"}, _names(model), WEIGHT_MAP)
    assert layout == CheckpointLayout(kind="native")
    layout = decide_layout([], {PREFIX_METADATA_KEY: "model."}, _names(model), WEIGHT_MAP)
    assert layout == CheckpointLayout(kind="native", prefix="model.")


def test_names_decide_without_metadata() -> None:
    model = _tiny()
    names = _names(model)
    hf_keys = [WEIGHT_MAP.to_external(k) for k in names]
    assert decide_layout(hf_keys, {}, names, WEIGHT_MAP).kind == "external"
    assert decide_layout(sorted(names), {}, names, WEIGHT_MAP) == CheckpointLayout(kind="native")
    prefixed = [REMOTE_WEIGHT_PREFIX + k for k in names]  # a remote-code export re-saved by HF
    assert decide_layout(prefixed, {}, names, WEIGHT_MAP).prefix == REMOTE_WEIGHT_PREFIX


def test_no_layout_explaining_any_name_is_a_clear_error() -> None:
    names = _names(_tiny())
    with pytest.raises(CheckpointLayoutError, match="no tensor name the model knows") as info:
        decide_layout(["transformer.h.0.attn.c_attn.weight"], {}, names, WEIGHT_MAP, path="x")
    assert info.value.keys == ["transformer.h.0.attn.c_attn.weight"]
    with pytest.raises(CheckpointLayoutError, match="'sideways'"):
        decide_layout([], {LAYOUT_METADATA_KEY: "sideways"}, names, WEIGHT_MAP)


def test_a_mixed_checkpoint_is_not_renamed_tensor_by_tensor(tmp_path: Path) -> None:
    # Native names with one Hugging Face name mixed in: the native layout wins for the whole
    # file, and the stray key is reported rather than silently mapped.
    model = _tiny()
    tensors = {k: v.clone() for k, v in model_tensors(model)[0].items()}
    tensors["model.norm.weight"] = tensors.pop("final_norm.weight")
    save_safetensors_sharded(tensors, tmp_path)
    empty = lmhub.get_model_hub("llama").create_new_model(model.config, meta=True)
    with pytest.raises(StateDictMismatchError) as info:
        lmhub.load_checkpoint(tmp_path, empty)
    assert info.value.unexpected == ["model.norm.weight"]
    assert info.value.missing == ["final_norm.weight"]


def test_saved_checkpoints_record_their_layout(tmp_path: Path) -> None:
    lmhub.save_checkpoint(tmp_path, _tiny())
    with open_checkpoint(tmp_path) as reader:
        assert reader.metadata()[LAYOUT_METADATA_KEY] == "native"


def test_a_foreign_checkpoint_is_a_layout_error_on_load(tmp_path: Path) -> None:
    save_safetensors_sharded({"transformer.wte.weight": torch.zeros(4, 4)}, tmp_path)
    empty = lmhub.get_model_hub("llama").create_new_model(_tiny().config, meta=True)
    with pytest.raises(CheckpointLayoutError, match=str(tmp_path)):
        lmhub.load_checkpoint(tmp_path, empty)
