"""Qwen2 <-> Hugging Face: the config.json mapping (the checkpoint layout is Llama's).

Qwen2's sliding window is spelled ``use_sliding_window`` (on/off), ``sliding_window`` (the size)
and ``max_window_layers`` (layers ``i >= max_window_layers`` slide), or, since transformers 5,
an explicit ``layer_types`` list. :func:`qwen_windows_from_hf` and :func:`qwen_windows_to_hf`
translate between that and lmhub's ``sliding_window`` + ``layer_types``; Qwen3 shares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.errors import ConfigError
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.config import LayerType, LlamaConfig
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
)
from lmhub.models.qwen2.config import Qwen2Config

QWEN2_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
}
"""transformers' Qwen2Config defaults for the keys a config.json may leave out."""

QWEN2_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_bias": True,
    "attn_output_bias": False,
    "ffn_bias": False,
    "qk_norm": False,
}
"""What transformers' Qwen2 hard-codes: q/k/v biases, no output or MLP bias, no q/k norms."""

_HF_LAYER_TYPES: Final[Mapping[str, LayerType]] = {
    "full_attention": "full",
    "sliding_attention": "sliding",
}


def qwen_windows_from_hf(hf: Mapping[str, Any]) -> dict[str, Any]:
    """Return lmhub's ``sliding_window`` and ``layer_types`` for a Qwen ``config.json`` dict.

    As in transformers: without ``use_sliding_window`` nothing slides; with it, the layers
    ``layer_types`` marks ``sliding_attention`` slide, or else those from ``max_window_layers``
    on. ``layer_types`` comes back ``None`` when every layer slides.

    Raises:
        ConfigError: naming the key of an ill-typed value.
    """
    none: dict[str, Any] = {"sliding_window": None, "layer_types": None}
    if not json_value(hf.get("use_sliding_window", False), bool, key="use_sliding_window"):
        return none
    window = json_value(hf.get("sliding_window", 4096), int | None, key="sliding_window")
    num_layers = json_value(hf.get("num_hidden_layers"), int, key="num_hidden_layers")
    names = json_value(hf.get("layer_types"), list[str] | None, key="layer_types")
    if names is None:
        start = json_value(hf.get("max_window_layers", 28), int, key="max_window_layers")
        types: list[LayerType] = ["sliding" if i >= start else "full" for i in range(num_layers)]
    else:
        unknown = [n for n in names if n not in _HF_LAYER_TYPES]
        if unknown:
            raise ConfigError(
                f"The key 'layer_types' holds '{unknown[0]}'; lmhub's Qwen reads only "
                f"{' and '.join(_HF_LAYER_TYPES)}.",
                field="layer_types",
                value=unknown[0],
            )
        types = [_HF_LAYER_TYPES[n] for n in names]
    if window is None or "sliding" not in types:
        return none
    return {"sliding_window": window, "layer_types": None if "full" not in types else types}


def qwen_windows_to_hf(config: LlamaConfig) -> dict[str, Any]:
    """Return the Qwen ``config.json`` keys that say which layers slide over what window.

    Raises:
        ConfigError: if sliding layers come before full ones, which ``max_window_layers``
            (all transformers 4 reads) cannot say.
    """
    windows = config.layer_windows()
    types = ["sliding" if w is not None else "full" for w in windows]
    first = types.index("sliding") if "sliding" in types else len(types)
    if "full" in types[first:]:
        raise ConfigError(
            f"The layer types {types} put full-attention layers after sliding ones, which "
            "Qwen's max_window_layers cannot express (only layers from it on slide). Make the "
            "sliding layers the last ones.",
            field="layer_types",
            value=config.layer_types,
        )
    return {
        "use_sliding_window": first < len(types),
        "sliding_window": config.sliding_window if first < len(types) else None,
        "max_window_layers": first,
        "layer_types": [f"{t}_attention" for t in types],
    }


def qwen2_config_from_hf(hf: Mapping[str, Any]) -> Qwen2Config:
    """Build a :class:`Qwen2Config` from a Hugging Face Qwen2 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    return decoder_config_from_hf(
        hf,
        Qwen2Config,
        defaults=QWEN2_HF_DEFAULTS,
        fixed={**QWEN2_HF_FIXED, **qwen_windows_from_hf(hf)},
    )


def qwen2_config_to_hf(config: Qwen2Config) -> dict[str, Any]:
    """Build a Hugging Face Qwen2 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Qwen2 lacks.
    """
    hf = decoder_config_to_hf(config, fixed=QWEN2_HF_FIXED, model_type="qwen2")
    if hf["head_dim"] == config.model_dim // config.num_heads:
        del hf["head_dim"]  # Qwen2Config has no such key; its models derive the width
    return {**hf, **qwen_windows_to_hf(config)}
