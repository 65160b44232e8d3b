"""SmolLM3 <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's).

transformers' SmolLM3 marks each layer in ``no_rope_layers`` (1: rotates, 0: NoPE), or, without
it, makes every ``no_rope_layer_interval``-th layer NoPE. Sliding windows need
``use_sliding_window``; its default ``layer_types`` slide on the NoPE layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.errors import ConfigError
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.config import LayerType
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
    drop_derived_head_dim,
)
from lmhub.models.smollm3.config import SMOLLM3_NOPE_INTERVAL, SmolLM3Config, interval_nope_layers

SMOLLM3_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "vocab_size": 128_256,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "bos_token_id": 128_000,
    "eos_token_id": 128_001,
    "pad_token_id": 128_004,
}
"""transformers' SmolLM3Config defaults for the keys a config.json may leave out."""

SMOLLM3_DEFAULT_THETA: Final = 2_000_000.0
"""The RoPE base transformers' SmolLM3 assumes where a config names none."""

SMOLLM3_HF_FIXED: Final[Mapping[str, Any]] = {"attn_output_bias": None, "qk_norm": False}
"""What transformers' SmolLM3 hard-codes: ``attention_bias`` on all four projections alike, no
q/k norms."""

_HF_LAYER_TYPES: Final[Mapping[str, LayerType]] = {
    "full_attention": "full",
    "sliding_attention": "sliding",
}


def smollm3_layers_from_hf(hf: Mapping[str, Any]) -> dict[str, Any]:
    """Return lmhub's ``nope_layers``, ``sliding_window`` and ``layer_types`` of a SmolLM3
    ``config.json``, as transformers derives them.

    Raises:
        ConfigError: naming the key of an ill-typed, short or unknown value.
    """
    num_layers = json_value(hf.get("num_hidden_layers"), int, key="num_hidden_layers")
    flags = json_value(hf.get("no_rope_layers"), list[int] | None, key="no_rope_layers")
    if flags is None:
        interval = json_value(
            hf.get("no_rope_layer_interval", SMOLLM3_NOPE_INTERVAL),
            int,
            key="no_rope_layer_interval",
        )
        nope = interval_nope_layers(num_layers, interval)
    elif len(flags) < num_layers:
        raise ConfigError(
            f"The key 'no_rope_layers' lists {len(flags)} layers, but the model has "
            f"{num_layers}. Give one flag (1: RoPE, 0: none) per layer.",
            field="no_rope_layers",
            value=flags,
        )
    else:
        nope = [i for i in range(num_layers) if not flags[i]]
    use = json_value(hf.get("use_sliding_window", False), bool, key="use_sliding_window")
    window = json_value(hf.get("sliding_window"), int | None, key="sliding_window")
    names = json_value(hf.get("layer_types"), list[str] | None, key="layer_types")
    if names is None:
        slides = use and window is not None
        types: list[LayerType] = [
            "sliding" if slides and i in nope else "full" for i in range(num_layers)
        ]
    else:
        unknown = [n for n in names if n not in _HF_LAYER_TYPES]
        if unknown:
            raise ConfigError(
                f"The key 'layer_types' holds '{unknown[0]}'; lmhub's SmolLM3 reads only "
                f"{' and '.join(_HF_LAYER_TYPES)}.",
                field="layer_types",
                value=unknown[0],
            )
        types = [_HF_LAYER_TYPES[n] for n in names]
    layers: dict[str, Any] = {"nope_layers": nope or None}
    if window is None or "sliding" not in types:
        return {**layers, "sliding_window": None, "layer_types": None}
    return {
        **layers,
        "sliding_window": window,
        "layer_types": None if "full" not in types else types,
    }


def smollm3_config_from_hf(hf: Mapping[str, Any]) -> SmolLM3Config:
    """Build a :class:`SmolLM3Config` from a Hugging Face SmolLM3 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    theta_default = {"rope_theta": hf.get("rope_theta") or SMOLLM3_DEFAULT_THETA}
    return decoder_config_from_hf(
        {**hf, **theta_default},
        SmolLM3Config,
        defaults=SMOLLM3_HF_DEFAULTS,
        fixed={**SMOLLM3_HF_FIXED, **smollm3_layers_from_hf(hf)},
    )


def smollm3_config_to_hf(config: SmolLM3Config) -> dict[str, Any]:
    """Build a Hugging Face SmolLM3 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' SmolLM3 lacks.
    """
    hf = decoder_config_to_hf(
        config, fixed=SMOLLM3_HF_FIXED, model_type="smollm3", own=("nope_layers",)
    )
    types = ["sliding" if w is not None else "full" for w in config.layer_windows()]
    return drop_derived_head_dim(
        {
            **hf,
            "no_rope_layers": [int(r) for r in config.layer_rotates()],
            "use_sliding_window": config.sliding_window is not None,
            "sliding_window": config.sliding_window,
            "layer_types": [f"{t}_attention" for t in types],
        }
    )
