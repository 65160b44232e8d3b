"""Gemma <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's; the norm
weights are stored as offsets from one on both sides, so they load unchanged).

The GELU names transformers' Gemma families use are read here for all three of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.errors import ConfigError
from lmhub.models.gemma.config import GemmaConfig
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)

HF_ACTIVATIONS: Final[Mapping[str, str]] = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu": "gelu",
    "silu": "silu",
}
"""transformers' activation names (``ACT2FN``) -> lmhub's (:data:`lmhub.nn.ffn.ACTIVATIONS`)."""

ACTIVATION_NAMES: Final[Mapping[str, str]] = {
    "gelu_tanh": "gelu_pytorch_tanh",
    "gelu": "gelu",
    "silu": "silu",
}
"""lmhub's activation names -> the transformers name written on export."""

GEMMA_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "head_dim": 256,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}
"""transformers' GemmaConfig defaults for the keys a config.json may leave out."""

GEMMA_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": False,
    "sliding_window": None,
    "layer_types": None,
    "norm_unit_offset": True,
    "scale_embeddings": True,
    "sandwich_norms": False,
    "query_pre_attn_scalar": None,
    "attn_logit_softcap": None,
    "rope_local_theta": None,
}
"""What transformers' Gemma hard-codes: (1 + w) norms, sqrt(d) embedding scale, full
attention scaled by ``head_dim ** -0.5``, no MLP bias, no q/k norms."""

ACTIVATION_KEYS: Final = ("hidden_act", "hidden_activation")


def activation_from_hf(hf: Mapping[str, Any], key: str, *, legacy_gelu: bool = False) -> str:
    """Return lmhub's name of the activation ``hf[key]`` names (tanh GELU when absent).

    ``legacy_gelu``: read ``gelu`` as the tanh GELU, as transformers' Gemma (1) does for its
    first releases.

    Raises:
        ConfigError: naming ``key`` if the activation is one lmhub lacks.
    """
    name = json_value(hf.get(key), str | None, key=key) or "gelu_pytorch_tanh"
    if legacy_gelu and name == "gelu":
        name = "gelu_pytorch_tanh"
    if name not in HF_ACTIVATIONS:
        raise ConfigError(
            f"The key '{key}' is '{name}', an activation lmhub does not support. lmhub "
            f"supports: {', '.join(HF_ACTIVATIONS)}.",
            field=key,
            value=name,
        )
    return HF_ACTIVATIONS[name]


def without_activation(hf: Mapping[str, Any]) -> dict[str, Any]:
    """``hf`` without its activation keys (read by :func:`activation_from_hf` instead)."""
    return {k: v for k, v in hf.items() if k not in ACTIVATION_KEYS}


def gemma_config_from_hf(hf: Mapping[str, Any]) -> GemmaConfig:
    """Build a :class:`GemmaConfig` from a Hugging Face Gemma ``config.json`` dict.

    The activation is ``hidden_activation`` where set (transformers 4), else ``hidden_act``;
    the legacy ``gelu`` of the first releases means the tanh GELU, as in transformers.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    key = "hidden_activation" if hf.get("hidden_activation") is not None else "hidden_act"
    return decoder_config_from_hf(
        without_activation(hf),
        GemmaConfig,
        defaults=GEMMA_HF_DEFAULTS,
        fixed=GEMMA_HF_FIXED,
        ffn_activation=activation_from_hf(hf, key, legacy_gelu=True),
    )


def gemma_config_to_hf(config: GemmaConfig) -> dict[str, Any]:
    """Build a Hugging Face Gemma ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Gemma lacks.
    """
    if config.ffn_activation != "gelu_tanh":
        raise ConfigError(
            f"The config sets 'ffn_activation' to '{config.ffn_activation}', but transformers' "
            "Gemma reads every GELU name as the tanh GELU. Set it to 'gelu_tanh' to export.",
            field="ffn_activation",
            value=config.ffn_activation,
        )
    hf = decoder_config_to_hf(
        config, fixed=GEMMA_HF_FIXED, model_type="gemma", own={"ffn_activation"}
    )
    return {**hf, "hidden_act": "gelu_pytorch_tanh"}
