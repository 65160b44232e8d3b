"""The GPT-2 family: preset sizes, and its config.json mapping (parity is in tests/oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError, HfConfigError
from lmhub.models.gpt2 import gpt2_family

# The sizes the GPT-2 models are published under, and the exact count of transformers' model of
# the published config (counted below). "1.5B" is a rounding of XL's 1.558B.
PUBLISHED = {
    "gpt2": (124e6, 124_439_808),
    "gpt2_medium": (355e6, 354_823_168),
    "gpt2_large": (774e6, 774_030_080),
    "gpt2_xl": (1.5e9, 1_557_611_200),
}

# openai-community/gpt2's config.json, as published.
GPT2_JSON: dict[str, Any] = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "embd_pdrop": 0.1,
    "eos_token_id": 50256,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}


def hf() -> Any:
    assert gpt2_family.hf is not None
    return gpt2_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("gpt2")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gpt2_family.archs) - {"gpt2_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    nominal, exact = PUBLISHED[arch]
    assert count(arch) == exact
    assert count(arch) == pytest.approx(nominal, rel=0.01 if arch != "gpt2_xl" else 0.04)


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    import transformers

    fields = hf().config_to_hf(gpt2_family.archs.get(arch))
    with torch.device("meta"):
        theirs = transformers.GPT2LMHeadModel(transformers.GPT2Config(**fields))
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)


@pytest.mark.parametrize("arch", gpt2_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = gpt2_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


def test_the_published_config_json_reads_as_the_preset() -> None:
    config = hf().config_from_hf(GPT2_JSON)
    assert config == lmhub.apply_overrides(gpt2_family.archs.get("gpt2"), {"dropout_p": 0.1})


@pytest.mark.parametrize(
    ("key", "value"),
    [("scale_attn_weights", False), ("scale_attn_by_inverse_layer_idx", True)],
)
def test_attention_options_lmhub_lacks_are_refused(key: str, value: bool) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        hf().config_from_hf({**GPT2_JSON, key: value})
    assert info.value.field == key


def test_an_unknown_activation_names_the_key(tmp_path: Any) -> None:
    import json

    (tmp_path / "config.json").write_text(
        json.dumps({**GPT2_JSON, "activation_function": "swish2"})
    )
    with pytest.raises(HfConfigError, match=r"activation_function.*swish2") as info:
        lmhub.load_model(tmp_path)
    assert info.value.key == "activation_function"


def test_checkpoints_without_the_transformer_prefix_and_with_mask_buffers_load() -> None:
    """openai-community/gpt2 was saved from GPT2Model: bare names, plus causal-mask buffers."""
    wm = gpt2_family.weight_map
    assert wm.to_native("h.3.attn.c_proj.weight") == "layers.3.attn.o_proj.weight"
    assert wm.to_native("transformer.wpe.weight") == "pos_embed.weight"
    assert wm.to_external("layers.3.ffn.fc1.bias") == "transformer.h.3.mlp.c_fc.bias"
    items = [("h.0.attn.bias", torch.ones(1, 1, 4, 4)), ("h.0.attn.masked_bias", torch.ones(()))]
    assert list(wm.convert_to_native(items)) == []
