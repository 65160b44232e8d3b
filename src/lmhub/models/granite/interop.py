"""Granite <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.models.granite.config import GraniteConfig
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)

GRANITE_HF_DEFAULTS: Final[Mapping[str, Any]] = LLAMA_HF_DEFAULTS
"""transformers' GraniteConfig defaults for the keys a config.json may leave out (Llama's)."""

GRANITE_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "qk_norm": False,
    "sliding_window": None,
    "layer_types": None,
}
"""What transformers' Granite hard-codes: ``attention_bias`` on all four projections alike,
no q/k norms, full attention."""

_MULTIPLIERS: Final = (
    "embedding_multiplier",
    "residual_multiplier",
    "attention_multiplier",
    "logits_scaling",
)
"""The Granite keys, named alike in ``config.json`` and lmhub (all default to 1.0)."""


def granite_config_from_hf(hf: Mapping[str, Any]) -> GraniteConfig:
    """Build a :class:`GraniteConfig` from a Hugging Face Granite ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    extra = {key: json_value(hf.get(key, 1.0), float, key=key) for key in _MULTIPLIERS}
    return decoder_config_from_hf(
        hf, GraniteConfig, defaults=GRANITE_HF_DEFAULTS, fixed=GRANITE_HF_FIXED, **extra
    )


def granite_config_to_hf(config: GraniteConfig) -> dict[str, Any]:
    """Build a Hugging Face Granite ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Granite lacks.
    """
    hf = decoder_config_to_hf(
        config,
        fixed=GRANITE_HF_FIXED,
        model_type="granite",
        own=("embedding_multiplier", "residual_multiplier", "attention_multiplier"),
    )
    scale = config.attention_multiplier
    if scale is None:  # lmhub's default; transformers' Granite needs the number
        scale = config.resolved_head_dim() ** -0.5
    return {
        **hf,
        "embedding_multiplier": config.embedding_multiplier,
        "residual_multiplier": config.residual_multiplier,
        "attention_multiplier": scale,
        "logits_scaling": config.logits_scaling,
    }
