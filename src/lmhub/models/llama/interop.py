"""Llama <-> Hugging Face: the checkpoint key map and the config.json mapping.

The RoPE translation (``rope_theta`` / ``rope_scaling`` / ``rope_parameters``) is the one every
Hugging Face RoPE family shares; later families import it from here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, TypeVar

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.hf_dir import HF_KEY_FIELDS, HF_KEYS, json_value, read_hf_keys, shown
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.rope import ROPE_KINDS, RopeScaling

# HF Llama keeps q/k/v separate and uses rotate-half RoPE, like lmhub: the map is a pure rename.
# Mistral, Qwen2 and Qwen3 use the same layout (Qwen3's self_attn.q_norm/k_norm included).
LLAMA_WEIGHT_MAP = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        KeyRule("model.layers.{i}.self_attn.{proj}.{p}", "layers.{i}.attn.{proj}.{p}"),
        KeyRule("model.layers.{i}.mlp.{proj}.{p}", "layers.{i}.ffn.{proj}.{p}"),
        KeyRule("model.layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
        KeyRule("model.layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)

LLAMA_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_dropout": 0.0,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
}
"""transformers' LlamaConfig defaults for the keys a config.json may leave out."""

DEFAULT_ROPE_THETA: Final = 10_000.0
"""The base transformers assumes when a config names none."""


LLAMA_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "qk_norm": False,
    "sliding_window": None,
    "layer_types": None,
}
"""The shared-config knobs transformers' Llama hard-codes (no ``config.json`` key of its own)."""


DECODER_KNOB_DEFAULTS: Final[Mapping[str, Any]] = {
    "ffn_activation": "silu",
    "norm_unit_offset": False,
    "scale_embeddings": False,
    "sandwich_norms": False,
    "query_pre_attn_scalar": None,
    "attn_logit_softcap": None,
    "rope_local_theta": None,
    "partial_rotary_factor": 1.0,
    "embedding_multiplier": 1.0,
    "residual_multiplier": 1.0,
    "attention_multiplier": None,
    "qk_norm_scope": "head",
    "pre_norms": True,
    "nope_layers": None,
    "moe": None,
    "attn_sinks": False,
}
"""The shared-config knobs only some HF families have a key for, at the values every other HF
family hard-codes; export refuses a config that changes one its family cannot express."""


def llama_config_from_hf(hf: Mapping[str, Any]) -> LlamaConfig:
    """Build a :class:`LlamaConfig` from a Hugging Face Llama ``config.json`` dict.

    Accepts both ``rope_theta``/``rope_scaling`` (transformers 4) and ``rope_parameters``
    (transformers 5).

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    return decoder_config_from_hf(hf, LlamaConfig, defaults=LLAMA_HF_DEFAULTS, fixed=LLAMA_HF_FIXED)


def llama_config_to_hf(config: LlamaConfig) -> dict[str, Any]:
    """Build a Hugging Face Llama ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Llama lacks (e.g. ``qk_norm``).
    """
    return decoder_config_to_hf(config, fixed=LLAMA_HF_FIXED, model_type="llama")


# -- the shared decoder config -------------------------------------------------------------------

ConfigT = TypeVar("ConfigT", bound=LlamaConfig)


def decoder_config_from_hf(
    hf: Mapping[str, Any],
    config_class: type[ConfigT],
    *,
    defaults: Mapping[str, Any],
    fixed: Mapping[str, Any],
    **extra: Any,
) -> ConfigT:
    """Build a Llama-like config from a ``config.json`` dict: the shared :data:`HF_KEYS`, RoPE,
    the ``fixed`` fields the HF class hard-codes, and the family's own ``extra`` fields.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    act = json_value(hf.get("hidden_act", "silu"), str, key="hidden_act")
    if act != "silu":
        raise ConfigError(
            f"The key 'hidden_act' is '{act}', but lmhub's {config_class.__name__} supports only "
            "'silu'.",
            field="hidden_act",
            value=act,
        )
    if hf.get("num_key_value_heads") is None and "num_attention_heads" in hf:
        # transformers reads a missing or null num_key_value_heads as one per query head.
        hf = {**hf, "num_key_value_heads": hf["num_attention_heads"]}
    # Keys of hard-coded fields are ignored, as the HF class ignores them.
    hf = {k: v for k, v in hf.items() if HF_KEY_FIELDS.get(k) not in fixed}
    values = {**read_hf_keys(hf, config_class, {**defaults, **_fixed_keys(fixed)}), **fixed}
    theta, scaling = rope_from_hf(hf)
    return config_class(**values, rope_theta=theta, rope_scaling=scaling, **extra)


def decoder_config_to_hf(
    config: LlamaConfig,
    *,
    fixed: Mapping[str, Any],
    model_type: str,
    own: Collection[str] = (),
) -> dict[str, Any]:
    """Build the shared part of a ``config.json`` dict for a Llama-like config.

    The keys of ``fixed`` fields are left out, since the HF class of ``model_type`` has none.
    ``own`` names the :data:`DECODER_KNOB_DEFAULTS` knobs the family writes keys for itself;
    the others must keep their defaults.

    Raises:
        ConfigError: if a ``fixed`` field or a knob not in ``own`` differs from the value the
            HF class hard-codes.
    """
    knobs = {k: v for k, v in DECODER_KNOB_DEFAULTS.items() if k not in own}
    for name, value in {**knobs, **fixed}.items():
        if getattr(config, name) != value:
            raise ConfigError(
                f"The config sets '{name}' to {getattr(config, name)!r}, but transformers' "
                f"'{model_type}' models always use {value!r}, so the model cannot be exported "
                f"as a native '{model_type}' directory. Set '{name}' to {value!r}, or export "
                "with remote_code=True.",
                field=name,
                value=getattr(config, name),
            )
    shared = {
        row.key: getattr(config, row.field)
        for row in HF_KEYS
        if hasattr(config, row.field) and row.field not in fixed
    }
    return {
        **shared,
        "head_dim": config.resolved_head_dim(),
        **rope_to_hf(config.rope_theta, config.rope_scaling, max_seq_len=config.max_seq_len),
        "hidden_act": "silu",
    }


def _fixed_keys(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The HF keys of ``fixed`` fields, as defaults, so their absence is no error."""
    return {row.key: fixed[row.field] for row in HF_KEYS if row.field in fixed}


# -- RoPE ---------------------------------------------------------------------------------------

# The HF keys each kind reads besides rope_type and rope_theta.
_HF_ROPE_KEYS: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": (
        "factor",
        "original_max_position_embeddings",
        "beta_fast",
        "beta_slow",
        "attention_factor",
        "mscale",
        "mscale_all_dim",
        "truncate",
    ),
    "longrope": (
        "factor",
        "original_max_position_embeddings",
        "attention_factor",
        "short_factor",
        "long_factor",
    ),
    "proportional": ("factor", "partial_rotary_factor"),
}

# RopeScaling field -> its HF key, where the names differ.
_ROPE_FIELD_KEYS = {"kind": "rope_type", "original_max_seq_len": "original_max_position_embeddings"}


def rope_from_hf(hf: Mapping[str, Any]) -> tuple[float, RopeScaling | None]:
    """Read ``(rope_theta, scaling)`` from a Hugging Face ``config.json`` dict.

    Accepts the transformers 4 spelling (``rope_theta`` plus a ``rope_scaling`` dict keyed by
    ``rope_type`` or the legacy ``type``) and the transformers 5 one (``rope_parameters`` holding
    ``rope_type``, ``rope_theta`` and the scaling fields). Returns ``None`` for plain RoPE.

    Raises:
        ConfigError: whose ``field`` is the key at fault, e.g. ``rope_scaling.factor``.

    >>> theta, s = rope_from_hf(
    ...     {"rope_theta": 1e6, "rope_scaling": {"type": "linear", "factor": 2}})
    >>> theta, s.kind, s.factor
    (1000000.0, 'linear', 2.0)
    """
    # A truthy `rope_scaling` wins over `rope_parameters` in transformers 5; 4 reads only it.
    where = "rope_scaling" if hf.get("rope_scaling") else "rope_parameters"
    params = hf.get(where) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"The key '{where}' is {shown(params)}, but it must be a mapping such as "
            '{"rope_type": "linear", "factor": 2.0}, or null.',
            field=where,
            value=params,
        )
    if any(isinstance(v, dict) for v in params.values()):
        raise ConfigError(
            f"The key '{where}' holds a different RoPE per layer type, which lmhub does not "
            "support. Use a model whose layers all share one RoPE.",
            field=where,
            value=params,
        )

    def param(name: str, tp: Any, *, top_level: bool = False) -> Any:
        # `top_level` keys may also sit beside rope_scaling; the top-level one wins.
        if top_level and hf.get(name) is not None:
            return json_value(hf[name], tp, key=name)
        return json_value(params.get(name), tp, key=f"{where}.{name}")

    theta = param("rope_theta", float | None) if "rope_theta" in params else None
    if theta is None:
        theta = json_value(hf.get("rope_theta"), float | None, key="rope_theta")
    theta = DEFAULT_ROPE_THETA if theta is None else theta

    type_key = "rope_type" if "rope_type" in params else "type"
    kind = param(type_key, str | None) or "default"
    partial = param("partial_rotary_factor", float | None, top_level=True)
    if partial is not None and partial != 1 and kind != "proportional":
        raise ConfigError(
            f"The config rotates only a fraction ({partial}) of each head, which lmhub's RoPE "
            "does not support. Use a model with partial_rotary_factor 1.",
            field="partial_rotary_factor",
            value=partial,
        )
    if kind not in ROPE_KINDS:
        raise ConfigError(
            f"The key '{where}.{type_key}' is '{kind}', a RoPE type lmhub does not support. "
            f"lmhub supports: {', '.join(ROPE_KINDS)}.",
            field=f"{where}.{type_key}",
            value=kind,
        )
    if kind == "default":
        return theta, None

    original = None
    if kind in ("llama3", "yarn", "longrope"):
        # A top-level original_max_position_embeddings (Phi-3 style) wins in transformers too.
        original = param("original_max_position_embeddings", int | None, top_level=True)
    factor = param("factor", float | None)
    max_len = json_value(
        hf.get("max_position_embeddings"), int | None, key="max_position_embeddings"
    )
    if factor is None and kind == "yarn" and original and original > 0 and max_len is not None:
        factor = max_len / original  # DeepSeek-V3 style
    if factor is None and kind == "proportional":
        factor = 1.0  # transformers' default for it
    if factor is None and kind == "longrope" and max_len is not None:
        # Phi-3 leaves it out: the ratio of the context lengths sets the attention factor.
        factor = max_len / original if original and original > 0 else 1.0
    if factor is None:
        raise ConfigError(
            f"The '{kind}' RoPE config has no 'factor'. Add the scaling factor to the config's "
            f"'{where}'.",
            field=f"{where}.factor",
        )
    scaling = RopeScaling(kind=kind, factor=factor, original_max_seq_len=original)
    if kind == "llama3":
        for name in ("low_freq_factor", "high_freq_factor"):
            value = param(name, float | None)
            if value is not None:
                setattr(scaling, name, value)
    elif kind == "yarn":
        # transformers reads these with `or`, so 0 / None fall back to the paper's values.
        scaling.beta_fast = param("beta_fast", float | None) or 32.0
        scaling.beta_slow = param("beta_slow", float | None) or 1.0
        for name in ("attention_factor", "mscale", "mscale_all_dim"):
            setattr(scaling, name, param(name, float | None))
        truncate = param("truncate", bool | None)
        scaling.truncate = True if truncate is None else truncate
    elif kind == "proportional":
        scaling.partial_rotary_factor = 1.0 if partial is None else partial
    elif kind == "longrope":
        scaling.attention_factor = param("attention_factor", float | None)
        scaling.short_factor = param("short_factor", list[float] | None)
        scaling.long_factor = param("long_factor", list[float] | None)
    try:
        scaling.validate()
    except ConfigError as exc:
        key = f"{where}.{_ROPE_FIELD_KEYS.get(exc.field or '', exc.field)}"
        raise ConfigError(f"The key '{key}': {exc}", field=key, value=exc.value) from None
    return theta, scaling


def rope_to_hf(
    theta: float, scaling: RopeScaling | None, *, max_seq_len: int | None = None
) -> dict[str, Any]:
    """Return the RoPE keys of a Hugging Face ``config.json`` that transformers 4 and 5 both read.

    The result holds ``rope_theta``, ``rope_scaling`` (transformers 4; ``None`` for plain RoPE)
    and ``rope_parameters`` (transformers 5), each with only the fields ``scaling.kind`` uses.
    ``max_seq_len`` fills in ``original_max_position_embeddings`` when the scaling leaves it to
    the model, since transformers 4 requires it for llama3.

    >>> rope_to_hf(1e4, RopeScaling(kind="linear", factor=2.0))["rope_scaling"]
    {'rope_type': 'linear', 'factor': 2.0}
    """
    s = scaling or RopeScaling()
    s.validate()
    theta = float(theta)
    if s.kind == "default":
        return {
            "rope_theta": theta,
            "rope_scaling": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": theta},
        }
    if s.kind == "dynamic" and s.original_max_seq_len not in (None, max_seq_len):
        raise ConfigError(
            "transformers' dynamic RoPE takes the original context length from "
            "max_position_embeddings and has no field for a separate one. Set "
            "original_max_seq_len=None and max_seq_len to the original context length.",
            field="original_max_seq_len",
            value=s.original_max_seq_len,
        )

    values: dict[str, Any] = {
        "factor": float(s.factor),
        "original_max_position_embeddings": s.original_max_seq_len or max_seq_len,
        "low_freq_factor": float(s.low_freq_factor),
        "high_freq_factor": float(s.high_freq_factor),
        "beta_fast": float(s.beta_fast),
        "beta_slow": float(s.beta_slow),
        "attention_factor": s.attention_factor,
        "mscale": s.mscale,
        "mscale_all_dim": s.mscale_all_dim,
        # transformers 4 does not know `truncate`; only write it when it changes the result.
        "truncate": None if s.truncate else False,
        "short_factor": s.short_factor,
        "long_factor": s.long_factor,
        "partial_rotary_factor": float(s.partial_rotary_factor),
    }
    fields = {k: values[k] for k in _HF_ROPE_KEYS[s.kind] if values[k] is not None}
    if s.kind == "proportional" and s.factor == 1.0:
        del fields["factor"]  # transformers warns about the key, reading 1 without it
    return {
        "rope_theta": theta,
        "rope_scaling": {"rope_type": s.kind, **fields},
        "rope_parameters": {"rope_type": s.kind, "rope_theta": theta, **fields},
    }


def drop_derived_head_dim(hf: dict[str, Any]) -> dict[str, Any]:
    """Return ``hf`` without ``head_dim`` where it is ``hidden_size // num_attention_heads``,
    for the HF configs that have no such field (OLMo 2/3, SmolLM3): their models read a
    ``head_dim`` only when a config.json names one."""
    if hf.get("head_dim") == hf["hidden_size"] // hf["num_attention_heads"]:
        return {k: v for k, v in hf.items() if k != "head_dim"}
    return hf
