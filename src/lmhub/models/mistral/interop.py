"""Mistral <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.mistral.config import MistralConfig

MISTRAL_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "max_position_embeddings": 4096 * 32,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
"""transformers' MistralConfig defaults for the keys a config.json may leave out."""

MISTRAL_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_bias": False,
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": False,
    "layer_types": None,
}
"""What transformers' Mistral hard-codes: no biases, no q/k norms, one window for all layers."""

MISTRAL_DEFAULT_WINDOW: Final = 4096
"""The ``sliding_window`` transformers assumes when a config.json leaves the key out."""


def mistral_config_from_hf(hf: Mapping[str, Any]) -> MistralConfig:
    """Build a :class:`MistralConfig` from a Hugging Face Mistral ``config.json`` dict.

    ``sliding_window`` (every layer) is read as transformers reads it: absent means 4096,
    ``null`` means full attention.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    window = json_value(
        hf.get("sliding_window", MISTRAL_DEFAULT_WINDOW), int | None, key="sliding_window"
    )
    return decoder_config_from_hf(
        hf,
        MistralConfig,
        defaults=MISTRAL_HF_DEFAULTS,
        fixed={**MISTRAL_HF_FIXED, "sliding_window": window},
    )


def mistral_config_to_hf(config: MistralConfig) -> dict[str, Any]:
    """Build a Hugging Face Mistral ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Mistral lacks.
    """
    hf = decoder_config_to_hf(config, fixed=MISTRAL_HF_FIXED, model_type="mistral")
    return {**hf, "sliding_window": config.sliding_window}
