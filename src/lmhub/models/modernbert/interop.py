"""ModernBERT <-> Hugging Face: the weight map (fused ``Wqkv`` and ``Wi`` split into lmhub's
separate projections) and the config.json mapping.

transformers' ModernBERT fuses q/k/v into one ``Wqkv`` of ``[3 * dim, dim]`` and the GLU's
activated and gating halves into one ``Wi`` of ``[2 * inner, dim]`` (activated half first).
lmhub's shared blocks keep them apart, so the map splits them on import and joins them back on
export. Its ``config.json`` names the layer pattern either as ``layer_types`` with
``rope_parameters`` (transformers 5) or as ``global_attn_every_n_layers`` with
``global_rope_theta``/``local_rope_theta`` (the published files); both are read, the first is
written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gpt2.interop import activation_to_hf, hf_activation
from lmhub.models.hf_dir import json_value
from lmhub.models.modernbert.config import ModernBertConfig

_LAYER, _NATIVE = "model.layers.{i}", "layers.{i}"

MODERNBERT_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("model.embeddings.tok_embeddings.weight", "embed.weight"),
        KeyRule("model.embeddings.norm.{p}", "embed_norm.{p}"),
        KeyRule(f"{_LAYER}.attn_norm.{{p}}", f"{_NATIVE}.attn_norm.{{p}}"),
        KeyRule(
            f"{_LAYER}.attn.Wqkv.{{p}}",
            tuple(f"{_NATIVE}.attn.{q}.{{p}}" for q in ("q_proj", "k_proj", "v_proj")),
            ops=(Chunk(dim=0),),
        ),
        KeyRule(f"{_LAYER}.attn.Wo.{{p}}", f"{_NATIVE}.attn.o_proj.{{p}}"),
        KeyRule(f"{_LAYER}.mlp_norm.{{p}}", f"{_NATIVE}.ffn_norm.{{p}}"),
        KeyRule(
            f"{_LAYER}.mlp.Wi.{{p}}",
            (f"{_NATIVE}.ffn.gate_proj.{{p}}", f"{_NATIVE}.ffn.up_proj.{{p}}"),
            ops=(Chunk(dim=0),),
        ),
        KeyRule(f"{_LAYER}.mlp.Wo.{{p}}", f"{_NATIVE}.ffn.down_proj.{{p}}"),
        KeyRule("model.final_norm.{p}", "final_norm.{p}"),
        KeyRule("head.dense.{p}", "head.dense.{p}"),
        KeyRule("head.norm.{p}", "head.norm.{p}"),
        KeyRule("decoder.{p}", "lm_head.{p}"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)

_HF_FIELDS: Final[tuple[tuple[str, str, Any, Any], ...]] = (
    # (HF key, lmhub field, type, transformers' default)
    ("hidden_size", "model_dim", int, 768),
    ("num_hidden_layers", "num_layers", int, 22),
    ("num_attention_heads", "num_heads", int, 12),
    ("intermediate_size", "ffn_inner_dim", int, 1152),
    ("vocab_size", "vocab_size", int, 50368),
    ("max_position_embeddings", "max_seq_len", int, 8192),
    ("norm_eps", "norm_eps", float, 1e-5),
    ("norm_bias", "norm_bias", bool, False),
    ("local_attention", "local_attention", int, 128),
    ("attention_bias", "attn_bias", bool, False),
    ("mlp_bias", "ffn_bias", bool, False),
    ("classifier_bias", "head_bias", bool, False),
    ("decoder_bias", "decoder_bias", bool, True),
    ("tie_word_embeddings", "tie_embeddings", bool, True),
    ("attention_dropout", "dropout_p", float, 0.0),
    ("initializer_range", "init_std", float, 0.02),
    ("initializer_cutoff_factor", "init_cutoff_factor", float, 2.0),
    ("pad_token_id", "pad_token_id", int | None, 50283),
    ("bos_token_id", "bos_token_id", int | None, 50281),
    ("eos_token_id", "eos_token_id", int | list[int] | None, 50282),
)

_LAYER_TYPES: Final = {True: "full_attention", False: "sliding_attention"}


def _every_n(layer_types: list[str], num_layers: int) -> int:
    """The ``n`` of a ``layer_types`` list that is global every ``n`` layers from layer 0."""
    if len(layer_types) != num_layers:
        raise ConfigError(
            f"The key 'layer_types' lists {len(layer_types)} layers, but 'num_hidden_layers' is "
            f"{num_layers}. Make them agree.",
            field="layer_types",
            value=layer_types,
        )
    full = [i for i, t in enumerate(layer_types) if t == "full_attention"]
    n = full[1] if len(full) > 1 else num_layers
    expected = [_LAYER_TYPES[i % n == 0] for i in range(num_layers)]
    if layer_types != expected:
        raise ConfigError(
            "The key 'layer_types' is not global attention every n layers from layer 0 with "
            "'sliding_attention' elsewhere, the only pattern lmhub's ModernBERT builds. Use "
            "such a pattern.",
            field="layer_types",
            value=layer_types,
        )
    return n


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"The key '{key}' must be a mapping, not {type(value).__name__}. Fix the file.",
            field=key,
            value=value,
        )
    return value


def _rope_theta(hf: Mapping[str, Any], layer_type: str, old_key: str, default: float) -> float:
    params = hf.get("rope_parameters")
    entry = _mapping(params, "rope_parameters").get(layer_type) if params is not None else None
    if entry is None:
        return json_value(hf.get(old_key, default), float, key=old_key)
    key = f"rope_parameters.{layer_type}"
    entry = _mapping(entry, key)
    kind = json_value(entry.get("rope_type", "default"), str, key=f"{key}.rope_type")
    if kind != "default":
        raise ConfigError(
            f"The key '{key}.rope_type' is '{kind}', but lmhub's ModernBERT has plain RoPE "
            "only. Use a model without RoPE scaling.",
            field=f"{key}.rope_type",
            value=kind,
        )
    return json_value(entry.get("rope_theta", default), float, key=f"{key}.rope_theta")


def modernbert_config_from_hf(hf: Mapping[str, Any]) -> ModernBertConfig:
    """Build a :class:`ModernBertConfig` from a Hugging Face ModernBERT ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of an ill-typed or unsupported
            value.
    """
    values = {
        field: json_value(hf.get(key, default), tp, key=key)
        for key, field, tp, default in _HF_FIELDS
    }
    layer_types = json_value(hf.get("layer_types"), list[str] | None, key="layer_types")
    if layer_types is not None:
        every = _every_n(layer_types, values["num_layers"])
    else:
        every = json_value(
            hf.get("global_attn_every_n_layers", 3), int, key="global_attn_every_n_layers"
        )
    return ModernBertConfig(
        **values,
        activation=hf_activation(hf, "hidden_activation", "gelu"),
        head_activation=hf_activation(hf, "classifier_activation", "gelu"),
        global_attn_every_n_layers=every,
        global_rope_theta=_rope_theta(hf, "full_attention", "global_rope_theta", 160_000.0),
        local_rope_theta=_rope_theta(hf, "sliding_attention", "local_rope_theta", 10_000.0),
    )


def modernbert_config_to_hf(config: ModernBertConfig) -> dict[str, Any]:
    """Build a Hugging Face ModernBERT ``config.json`` dict (without model_type/architectures).

    lmhub drops out attention weights only, so the other dropouts are 0."""
    return {
        **{key: getattr(config, field) for key, field, _, _ in _HF_FIELDS},
        "hidden_activation": activation_to_hf(config.activation),
        "classifier_activation": activation_to_hf(config.head_activation),
        "layer_types": [_LAYER_TYPES[config.is_global(i)] for i in range(config.num_layers)],
        "global_attn_every_n_layers": config.global_attn_every_n_layers,
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": config.global_rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": config.local_rope_theta},
        },
        "embedding_dropout": 0.0,
        "mlp_dropout": 0.0,
    }
