"""Gemma 3 (text) <-> Hugging Face: the config.json mapping (the checkpoint layout is Gemma 2's,
plus ``self_attn.q_norm`` / ``self_attn.k_norm``, which its attention rule already covers).

Gemma 3 has a RoPE per kind of layer. transformers 4 spells it ``rope_theta`` + ``rope_scaling``
(global layers) and ``rope_local_base_freq`` (sliding ones); transformers 5 nests one
``rope_parameters`` dict per layer type. Both are read; both are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.errors import ConfigError
from lmhub.models.gemma2.config import alternating_layer_types
from lmhub.models.gemma2.interop import (
    GEMMA2_HF_DEFAULTS,
    GEMMA2_HF_FIXED,
    GEMMA2_OWN_KNOBS,
    gemma2_like_from_hf,
    gemma2_like_to_hf,
)
from lmhub.models.gemma3.config import GEMMA3_PERIOD, Gemma3Config
from lmhub.models.hf_dir import json_value, shown
from lmhub.models.llama.interop import rope_from_hf, rope_to_hf
from lmhub.nn.rope import RopeScaling

GEMMA3_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **GEMMA2_HF_DEFAULTS,
    "max_position_embeddings": 131_072,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
}
"""transformers' Gemma3TextConfig defaults for the keys a config.json may leave out."""

GEMMA3_HF_FIXED: Final[Mapping[str, Any]] = {
    **{k: v for k, v in GEMMA2_HF_FIXED.items() if k != "rope_local_theta"},
    "qk_norm": True,
}
"""What transformers' Gemma 3 hard-codes: Gemma 2's, plus per-head q/k norms."""

GLOBAL_THETA: Final = 1_000_000.0
LOCAL_THETA: Final = 10_000.0
"""The RoPE bases transformers assumes for global and sliding layers when a config names none."""

_ROPE_KEYS: Final = ("rope_theta", "rope_scaling", "rope_parameters", "rope_local_base_freq")


def gemma3_rope_from_hf(hf: Mapping[str, Any]) -> tuple[float, RopeScaling | None, float]:
    """Return ``(global theta, global scaling, local theta)`` of a Gemma 3 ``config.json``.

    Raises:
        ConfigError: naming the key of an ill-typed value, or a scaled sliding-layer RoPE.
    """
    params = hf.get("rope_parameters")
    max_len = {"max_position_embeddings": hf.get("max_position_embeddings")}
    if isinstance(params, dict) and {"full_attention", "sliding_attention"} & params.keys():
        full = {"rope_theta": GLOBAL_THETA, **(params.get("full_attention") or {})}
        if hf.get("rope_scaling"):  # transformers 5 lays it over the global layers' RoPE
            full.update(hf["rope_scaling"])
        theta, scaling = rope_from_hf({"rope_parameters": full, **max_len})
        local = params.get("sliding_attention") or {}
        if not isinstance(local, dict) or local.get("rope_type", "default") != "default":
            raise ConfigError(
                "The key 'rope_parameters.sliding_attention' is "
                f"{shown(local)}, but lmhub's Gemma 3 supports only plain RoPE on the sliding "
                'layers, such as {"rope_type": "default", "rope_theta": 10000.0}.',
                field="rope_parameters.sliding_attention",
                value=local,
            )
        key = "rope_parameters.sliding_attention.rope_theta"
        local_theta = json_value(local.get("rope_theta", LOCAL_THETA), float, key=key)
        return theta, scaling, local_theta
    theta, scaling = rope_from_hf({**hf, "rope_theta": hf.get("rope_theta") or GLOBAL_THETA})
    local_theta = json_value(
        hf.get("rope_local_base_freq", LOCAL_THETA), float, key="rope_local_base_freq"
    )
    return theta, scaling, local_theta


def gemma3_config_from_hf(hf: Mapping[str, Any]) -> Gemma3Config:
    """Build a :class:`Gemma3Config` from a Hugging Face ``gemma3_text`` ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    theta, scaling, local_theta = gemma3_rope_from_hf(hf)
    period = json_value(
        hf.get("sliding_window_pattern", GEMMA3_PERIOD), int, key="sliding_window_pattern"
    )
    if period < 1:
        raise ConfigError(
            f"The key 'sliding_window_pattern' is {period}, but it must be at least 1.",
            field="sliding_window_pattern",
            value=period,
        )
    # The global RoPE goes back in the flat spelling the shared reader understands.
    flat = {k: v for k, v in hf.items() if k not in _ROPE_KEYS}
    flat.update(rope_to_hf(theta, scaling))
    return gemma2_like_from_hf(
        flat,
        Gemma3Config,
        defaults=GEMMA3_HF_DEFAULTS,
        fixed={**GEMMA3_HF_FIXED, "rope_local_theta": local_theta},
        period=period,
    )


def gemma3_config_to_hf(config: Gemma3Config) -> dict[str, Any]:
    """Build a Hugging Face ``gemma3_text`` ``config.json`` dict (without model_type /
    architectures), readable by transformers 4 and 5.

    Raises:
        ConfigError: if the config uses a knob transformers' Gemma 3 lacks.
    """
    local = config.rope_local_theta
    if local is None:
        raise ConfigError(
            "transformers' Gemma 3 gives its sliding layers a RoPE base of their own, but the "
            "config's 'rope_local_theta' is null. Set it (e.g. 10000.0) to export.",
            field="rope_local_theta",
        )
    hf = gemma2_like_to_hf(
        config,
        fixed=GEMMA3_HF_FIXED,
        model_type="gemma3_text",
        own=(*GEMMA2_OWN_KNOBS, "rope_local_theta"),
    )
    full = rope_to_hf(config.rope_theta, config.rope_scaling, max_seq_len=config.max_seq_len)
    hf["rope_local_base_freq"] = float(local)
    hf["rope_parameters"] = {
        "full_attention": full["rope_parameters"],
        "sliding_attention": {"rope_type": "default", "rope_theta": float(local)},
    }
    # transformers 4 before `layer_types` reads the period.
    types = ["sliding" if w is not None else "full" for w in config.layer_windows()]
    for period in range(1, config.num_layers + 1):
        if types == alternating_layer_types(config.num_layers, period):
            hf["sliding_window_pattern"] = period
            break
    return hf
