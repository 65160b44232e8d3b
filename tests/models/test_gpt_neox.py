"""The GPT-NeoX family: Pythia preset sizes, and its config.json mapping (parity is in
tests/oracle)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.gpt_neox import gpt_neox_family

# Total parameter counts of the Pythia models (Biderman et al., 2023, Table 1), which
# transformers' GPTNeoXForCausalLM of each published config.json also counts (checked below).
PUBLISHED = {
    "pythia_70m": 70_426_624,
    "pythia_160m": 162_322_944,
    "pythia_410m": 405_334_016,
    "pythia_1b": 1_011_781_632,
    "pythia_1_4b": 1_414_647_808,
    "pythia_2_8b": 2_775_208_960,
    "pythia_6_9b": 6_857_302_016,
    "pythia_12b": 11_846_072_320,
}

# EleutherAI/pythia-410m's config.json, as published.
PYTHIA_410M_JSON: dict[str, Any] = {
    "architectures": ["GPTNeoXForCausalLM"],
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "model_type": "gpt_neox",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.24.0",
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 50304,
}


def hf() -> Any:
    assert gpt_neox_family.hf is not None
    return gpt_neox_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("gpt_neox")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(gpt_neox_family.archs) - {"gpt_neox_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    assert count(arch) == PUBLISHED[arch]


@pytest.mark.parametrize("arch", ["pythia_70m", "pythia_1_4b", "pythia_12b"])
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    import transformers

    fields = hf().config_to_hf(gpt_neox_family.archs.get(arch))
    with torch.device("meta"):
        theirs = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**fields))
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)


@pytest.mark.parametrize("arch", gpt_neox_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = gpt_neox_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


def test_the_published_config_json_reads_as_the_preset() -> None:
    assert hf().config_from_hf(PYTHIA_410M_JSON) == gpt_neox_family.archs.get("pythia_410m")


def test_transformers_5_rope_parameters_are_read() -> None:
    given = {k: v for k, v in PYTHIA_410M_JSON.items() if not k.startswith("rotary_")}
    given["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5000.0,
        "partial_rotary_factor": 0.5,
    }
    config = hf().config_from_hf(given)
    assert (config.rope_theta, config.partial_rotary_factor) == (5000.0, 0.5)
    assert config.rotary_dim() == 32


@pytest.mark.parametrize(
    ("fraction", "field"), [(0.0, "partial_rotary_factor"), (0.01, "partial_rotary_factor")]
)
def test_a_rotary_fraction_that_rotates_no_pair_is_refused(fraction: float, field: str) -> None:
    config = lmhub.apply_overrides(
        gpt_neox_family.archs.get("gpt_neox_tiny"), {"partial_rotary_factor": fraction}
    )
    with pytest.raises(ConfigError, match=field) as info:
        config.validate()
    assert info.value.field == field


def test_pythia_checkpoint_buffers_are_ignored() -> None:
    """The published Pythia files also hold mask tables and RoPE frequencies per layer."""
    items = [
        (f"gpt_neox.layers.2.attention.{name}", torch.ones(2))
        for name in ("bias", "masked_bias", "rotary_emb.inv_freq")
    ]
    assert list(gpt_neox_family.weight_map.convert_to_native(items)) == []


def test_parallel_and_sequential_layers_share_their_weight_names() -> None:
    hub = lmhub.get_model_hub("gpt_neox")
    tiny = gpt_neox_family.archs.get("gpt_neox_tiny")
    parallel = hub.create_new_model(tiny, meta=True)
    sequential = hub.create_new_model(
        lmhub.apply_overrides(tiny, {"use_parallel_residual": False}), meta=True
    )
    assert type(parallel.layers[0]) is not type(sequential.layers[0])
    assert parallel.state_dict().keys() == sequential.state_dict().keys()
