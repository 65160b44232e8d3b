"""Qwen3 <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's, plus
``self_attn.q_norm`` / ``self_attn.k_norm``, which its rename rule already covers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.qwen2.interop import qwen_windows_from_hf, qwen_windows_to_hf
from lmhub.models.qwen3.config import Qwen3Config

QWEN3_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
}
"""transformers' Qwen3Config defaults for the keys a config.json may leave out."""

QWEN3_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": True,
}
"""What transformers' Qwen3 hard-codes: q/k norms, ``attention_bias`` on all four projections
alike, no MLP bias."""


def qwen3_config_from_hf(hf: Mapping[str, Any]) -> Qwen3Config:
    """Build a :class:`Qwen3Config` from a Hugging Face Qwen3 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    return decoder_config_from_hf(
        hf,
        Qwen3Config,
        defaults=QWEN3_HF_DEFAULTS,
        fixed={**QWEN3_HF_FIXED, **qwen_windows_from_hf(hf)},
    )


def qwen3_config_to_hf(config: Qwen3Config) -> dict[str, Any]:
    """Build a Hugging Face Qwen3 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Qwen3 lacks.
    """
    hf = decoder_config_to_hf(config, fixed=QWEN3_HF_FIXED, model_type="qwen3")
    return {**hf, **qwen_windows_to_hf(config)}
