"""Gemma 2 <-> Hugging Face: the checkpoint key map (Llama's plus the sandwich norms) and the
config.json mapping. Gemma 3 shares both, with its own defaults."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, TypeVar

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gemma.interop import (
    ACTIVATION_NAMES,
    GEMMA_HF_DEFAULTS,
    GEMMA_HF_FIXED,
    activation_from_hf,
    without_activation,
)
from lmhub.models.gemma2.config import Gemma2Config, alternating_layer_types
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.config import LayerType
from lmhub.models.llama.interop import decoder_config_from_hf, decoder_config_to_hf

# HF's `post_attention_layernorm` is Llama's pre-FFN norm but Gemma 2's post-attention one.
GEMMA2_WEIGHT_MAP = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        KeyRule("model.layers.{i}.self_attn.{proj}.{p}", "layers.{i}.attn.{proj}.{p}"),
        KeyRule("model.layers.{i}.mlp.{proj}.{p}", "layers.{i}.ffn.{proj}.{p}"),
        KeyRule("model.layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
        KeyRule(
            "model.layers.{i}.post_attention_layernorm.weight", "layers.{i}.attn_post_norm.weight"
        ),
        KeyRule("model.layers.{i}.pre_feedforward_layernorm.weight", "layers.{i}.ffn_norm.weight"),
        KeyRule(
            "model.layers.{i}.post_feedforward_layernorm.weight", "layers.{i}.ffn_post_norm.weight"
        ),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)

GEMMA2_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **GEMMA_HF_DEFAULTS,
    "hidden_activation": "gelu_pytorch_tanh",
    "query_pre_attn_scalar": 256,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
}
"""transformers' Gemma2Config defaults for the keys a config.json may leave out."""

GEMMA2_OWN_KNOBS: Final = ("ffn_activation", "query_pre_attn_scalar", "attn_logit_softcap")
"""The shared-config knobs Gemma 2 writes keys for itself."""

GEMMA2_HF_FIXED: Final[Mapping[str, Any]] = {
    **{
        k: v
        for k, v in GEMMA_HF_FIXED.items()
        if k not in ("sliding_window", "layer_types", *GEMMA2_OWN_KNOBS)
    },
    "sandwich_norms": True,
}
"""What transformers' Gemma 2 hard-codes (Gemma's, plus sandwich norms); the window, layer
types, ``query_pre_attn_scalar`` and softcaps have keys."""

_HF_LAYER_TYPES: Final[Mapping[str, LayerType]] = {
    "full_attention": "full",
    "sliding_attention": "sliding",
}

_OWN_KEYS: Final = ("query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping")

ConfigT = TypeVar("ConfigT", bound=Gemma2Config)


def gemma_windows_from_hf(
    hf: Mapping[str, Any], *, period: int, family: str = "Gemma"
) -> dict[str, Any]:
    """Return lmhub's ``sliding_window`` and ``layer_types`` for a Gemma 2/3 ``config.json``
    (or another family's with the same keys: ``family`` names it in errors).

    As in transformers: ``layer_types`` where given, else every ``period``-th layer full and
    the others sliding. ``layer_types`` comes back ``None`` when every layer slides, and both
    come back ``None`` when none does (or the window is null).

    Raises:
        ConfigError: naming the key of an ill-typed or unknown value.
    """
    window = json_value(hf.get("sliding_window", 4096), int | None, key="sliding_window")
    names = json_value(hf.get("layer_types"), list[str] | None, key="layer_types")
    if names is None:
        num_layers = json_value(hf.get("num_hidden_layers"), int, key="num_hidden_layers")
        types = alternating_layer_types(num_layers, period)
    else:
        unknown = [n for n in names if n not in _HF_LAYER_TYPES]
        if unknown:
            raise ConfigError(
                f"The key 'layer_types' holds '{unknown[0]}'; lmhub's {family} reads only "
                f"{' and '.join(_HF_LAYER_TYPES)}. Give each layer one of those.",
                field="layer_types",
                value=unknown[0],
            )
        types = [_HF_LAYER_TYPES[n] for n in names]
    if window is None or "sliding" not in types:
        return {"sliding_window": None, "layer_types": None}
    return {"sliding_window": window, "layer_types": None if "full" not in types else types}


def gemma_windows_to_hf(config: Gemma2Config) -> dict[str, Any]:
    """Return the ``sliding_window`` and explicit ``layer_types`` keys of a Gemma 2/3 config."""
    types = ["sliding" if w is not None else "full" for w in config.layer_windows()]
    return {
        "sliding_window": config.sliding_window,
        "layer_types": [f"{t}_attention" for t in types],
    }


def gemma2_like_from_hf(
    hf: Mapping[str, Any],
    config_class: type[ConfigT],
    *,
    defaults: Mapping[str, Any],
    fixed: Mapping[str, Any],
    period: int,
) -> ConfigT:
    """Build a Gemma 2 or 3 config: the shared keys, the window pattern (every ``period``-th
    layer full unless ``layer_types`` says otherwise), the activation, scalar and softcaps.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    own = {k: hf.get(k, defaults[k]) for k in _OWN_KEYS}  # absent: transformers' default
    return decoder_config_from_hf(
        without_activation(hf),
        config_class,
        defaults=defaults,
        fixed={**fixed, **gemma_windows_from_hf(hf, period=period)},
        ffn_activation=activation_from_hf(
            {"hidden_activation": hf.get("hidden_activation", defaults["hidden_activation"])},
            "hidden_activation",
        ),
        query_pre_attn_scalar=json_value(
            own["query_pre_attn_scalar"], float, key="query_pre_attn_scalar"
        ),
        attn_logit_softcap=json_value(
            own["attn_logit_softcapping"], float | None, key="attn_logit_softcapping"
        ),
        final_logit_softcap=json_value(
            own["final_logit_softcapping"], float | None, key="final_logit_softcapping"
        ),
    )


def gemma2_like_to_hf(
    config: Gemma2Config,
    *,
    fixed: Mapping[str, Any],
    model_type: str,
    own: Collection[str] = GEMMA2_OWN_KNOBS,
) -> dict[str, Any]:
    """Build a Gemma 2 or 3 ``config.json`` dict (without model_type/architectures); ``own``
    names the shared knobs the caller writes keys for (see ``decoder_config_to_hf``).

    Raises:
        ConfigError: if the config uses a knob the HF class of ``model_type`` lacks.
    """
    scalar = config.query_pre_attn_scalar
    if scalar is None:
        raise ConfigError(
            f"transformers' '{model_type}' always scales attention scores by "
            "query_pre_attn_scalar ** -0.5, but the config's 'query_pre_attn_scalar' is null. "
            "Set it (to head_dim for the usual scale).",
            field="query_pre_attn_scalar",
        )
    hf = decoder_config_to_hf(config, fixed=fixed, model_type=model_type, own=own)
    del hf["hidden_act"]  # Gemma 2/3 read `hidden_activation`
    return {
        **hf,
        **gemma_windows_to_hf(config),
        "hidden_activation": ACTIVATION_NAMES[config.ffn_activation],
        # transformers declares it an int: write whole values as one.
        "query_pre_attn_scalar": int(scalar) if float(scalar).is_integer() else scalar,
        "attn_logit_softcapping": config.attn_logit_softcap,
        "final_logit_softcapping": config.final_logit_softcap,
    }


def gemma2_config_from_hf(hf: Mapping[str, Any]) -> Gemma2Config:
    """Build a :class:`Gemma2Config` from a Hugging Face Gemma 2 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    return gemma2_like_from_hf(
        hf, Gemma2Config, defaults=GEMMA2_HF_DEFAULTS, fixed=GEMMA2_HF_FIXED, period=2
    )


def gemma2_config_to_hf(config: Gemma2Config) -> dict[str, Any]:
    """Build a Hugging Face Gemma 2 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Gemma 2 lacks.
    """
    return gemma2_like_to_hf(config, fixed=GEMMA2_HF_FIXED, model_type="gemma2")
