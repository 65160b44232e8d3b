"""Gemma 4 (text) <-> Hugging Face: the checkpoint key map and the config.json mapping.

transformers has the text-only ``gemma4_text`` (``Gemma4ForCausalLM``, keys under ``model.``)
and the published multimodal ``gemma4`` (``Gemma4ForConditionalGeneration``: the text config
under ``text_config``, keys under ``model.language_model.``, vision and audio towers and their
embedders beside it). lmhub reads both (the towers are skipped) and writes the text-only form.

The global layers' RoPE is ``rope_parameters.full_attention`` (proportional), the sliding
layers' ``rope_parameters.sliding_attention`` (plain). The global layers' head width and
key/value heads come from ``global_head_dim`` and ``num_global_key_value_heads`` (the latter
read by transformers only with ``attention_k_eq_v``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gemma.interop import ACTIVATION_NAMES, activation_from_hf, without_activation
from lmhub.models.gemma2.interop import gemma_windows_to_hf
from lmhub.models.gemma4.config import Gemma4Config, default_layer_types
from lmhub.models.hf_dir import json_value, shown
from lmhub.models.llama.config import LayerType
from lmhub.models.llama.interop import (
    decoder_config_from_hf,
    decoder_config_to_hf,
    rope_to_hf,
)
from lmhub.nn.moe import MoeConfig

_NORMS: Final = (
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "attn_post_norm"),
    ("post_feedforward_layernorm", "ffn_post_norm"),
)


def _rules(p: str) -> list[KeyRule]:
    """The rules of one key prefix (``model.`` or ``model.language_model.``)."""
    layer = f"{p}layers.{{i}}"
    return [
        KeyRule(f"{p}embed_tokens.weight", "embed.weight"),
        KeyRule(f"{p}embed_tokens_per_layer.weight", "per_layer_embed.embed.weight"),
        KeyRule(f"{p}per_layer_model_projection.weight", "per_layer_embed.projection.weight"),
        KeyRule(f"{p}per_layer_projection_norm.weight", "per_layer_embed.norm.weight"),
        KeyRule(f"{layer}.self_attn.{{proj}}.weight", "layers.{i}.attn.{proj}.weight"),
        KeyRule(f"{layer}.self_attn.{{proj}}.bias", "layers.{i}.attn.{proj}.bias"),
        *(KeyRule(f"{layer}.{hf}.weight", f"layers.{{i}}.{ours}.weight") for hf, ours in _NORMS),
        KeyRule(f"{layer}.layer_scalar", "layers.{i}.layer_scalar"),
        KeyRule(f"{layer}.per_layer_input_gate.weight", "layers.{i}.per_layer_input.gate.weight"),
        KeyRule(
            f"{layer}.per_layer_projection.weight", "layers.{i}.per_layer_input.projection.weight"
        ),
        KeyRule(
            f"{layer}.post_per_layer_input_norm.weight", "layers.{i}.per_layer_input.norm.weight"
        ),
        KeyRule(f"{layer}.mlp.{{proj}}.weight", "layers.{i}.ffn.dense.{proj}.weight"),
        KeyRule(f"{layer}.pre_feedforward_layernorm.weight", "layers.{i}.ffn.dense_norm.weight"),
        # The MoE model's experts beside the dense feed-forward:
        KeyRule(
            f"{layer}.post_feedforward_layernorm_1.weight", "layers.{i}.ffn.dense_post_norm.weight"
        ),
        KeyRule(f"{layer}.router.proj.weight", "layers.{i}.ffn.moe.router.weight"),
        KeyRule(f"{layer}.router.scale", "layers.{i}.ffn.moe.router.scale"),
        KeyRule(f"{layer}.router.per_expert_scale", "layers.{i}.ffn.moe.router.per_expert_scale"),
        KeyRule(
            f"{layer}.experts.gate_up_proj",
            ("layers.{i}.ffn.moe.experts.gate_proj", "layers.{i}.ffn.moe.experts.up_proj"),
            ops=(Chunk(dim=1),),
        ),
        KeyRule(f"{layer}.experts.down_proj", "layers.{i}.ffn.moe.experts.down_proj"),
        KeyRule(
            f"{layer}.pre_feedforward_layernorm_2.weight", "layers.{i}.ffn.moe.input_norm.weight"
        ),
        KeyRule(
            f"{layer}.post_feedforward_layernorm_2.weight", "layers.{i}.ffn.moe_post_norm.weight"
        ),
        KeyRule(f"{p}norm.weight", "final_norm.weight"),
    ]


_IGNORED: Final = (
    "model.vision_tower.{rest:path}",
    "model.audio_tower.{rest:path}",
    "model.embed_vision.{rest:path}",
    "model.embed_audio.{rest:path}",
)
"""The multimodal checkpoints' towers and their embedders, which lmhub's text model lacks."""

GEMMA4_WEIGHT_MAP: Final = WeightMap(
    [
        *_rules("model."),  # first: export writes the text-only layout
        *_rules("model.language_model."),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    ignored=_IGNORED,
)
"""The Gemma 4 map, dense and MoE (the MoE layers add the experts' keys)."""

GEMMA4_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    "vocab_size": 262_144,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 30,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 131_072,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "attention_dropout": 0.0,
}
"""transformers' Gemma4TextConfig defaults for the shared keys a config.json may leave out."""

GEMMA4_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": True,
    "norm_unit_offset": False,
    "scale_embeddings": True,
    "sandwich_norms": True,
    "attention_multiplier": 1.0,
    "attn_logit_softcap": None,
    "query_pre_attn_scalar": None,
}
"""What transformers' Gemma 4 hard-codes."""

_OWN: Final = ("ffn_activation", "rope_local_theta", "moe", *GEMMA4_HF_FIXED)

_LAYER_TYPES: Final[Mapping[str, LayerType]] = {
    "full_attention": "full",
    "sliding_attention": "sliding",
}


def _text(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    """The text model's keys: ``text_config`` of a multimodal config, else the whole dict."""
    text = hf.get("text_config")
    if text is None:
        return hf
    if not isinstance(text, dict):
        raise ConfigError(
            f"The key 'text_config' is {shown(text)}, but it must be a mapping of the text "
            "model's keys.",
            field="text_config",
            value=text,
        )
    return text


def _get(hf: Mapping[str, Any], key: str, tp: Any, default: Any) -> Any:
    return json_value(hf[key], tp, key=key) if hf.get(key) is not None else default


def _layer_types(hf: Mapping[str, Any], num_layers: int) -> list[LayerType]:
    names = hf.get("layer_types")
    if names is None:
        types = default_layer_types(num_layers)
    else:
        names = json_value(names, list[str], key="layer_types")
        bad = [n for n in names if n not in _LAYER_TYPES]
        if bad:
            raise ConfigError(
                f"The key 'layer_types' holds '{bad[0]}', which Gemma 4 does not have. Use "
                "'sliding_attention' or 'full_attention'.",
                field="layer_types",
                value=bad[0],
            )
        types = [_LAYER_TYPES[n] for n in names]
    if types:
        types[-1] = "full"  # transformers forces the last layer global
    return types


def _rope(hf: Mapping[str, Any]) -> dict[str, Any]:
    """The global layers' RoPE (as a flat ``rope_parameters``) and the sliding layers' base,
    from Gemma 4's ``rope_parameters`` per layer type (transformers' defaults where absent)."""
    params = hf.get("rope_parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"The key 'rope_parameters' is {shown(params)}, but it must map 'full_attention' "
            "and 'sliding_attention' to their RoPE.",
            field="rope_parameters",
            value=params,
        )
    full = params.get(
        "full_attention",
        {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6},
    )
    local = params.get("sliding_attention", {"rope_type": "default", "rope_theta": 10_000.0})
    if not isinstance(local, dict) or local.get("rope_type", "default") != "default":
        raise ConfigError(
            f"The key 'rope_parameters.sliding_attention' is {shown(local)}, but lmhub's Gemma "
            '4 supports only plain RoPE on the sliding layers, such as {"rope_type": '
            '"default", "rope_theta": 10000.0}.',
            field="rope_parameters.sliding_attention",
            value=local,
        )
    if not isinstance(full, dict):
        raise ConfigError(
            f"The key 'rope_parameters.full_attention' is {shown(full)}, but it must be a "
            'mapping such as {"rope_type": "proportional", "partial_rotary_factor": 0.25}.',
            field="rope_parameters.full_attention",
            value=full,
        )
    local_key = "rope_parameters.sliding_attention.rope_theta"
    return {
        # The global layers' RoPE, in the flat spelling the shared reader understands.
        "rope_parameters": {"rope_theta": 1_000_000.0, **full},
        "rope_local_theta": json_value(local.get("rope_theta", 10_000.0), float, key=local_key),
    }


def _global_shape(
    hf: Mapping[str, Any], types: list[LayerType], k_eq_v: bool
) -> tuple[int, int | None]:
    """``(global_head_dim, num_global_kv_heads)``: from ``per_layer_config`` where the file has
    one (transformers 5.23 writes the global layers' overrides there), else from
    ``global_head_dim`` / ``num_global_key_value_heads``."""
    per_layer = hf.get("per_layer_config")
    if per_layer is None:
        kv = _get(hf, "num_global_key_value_heads", int, None) if k_eq_v else None
        return _get(hf, "global_head_dim", int, 512), kv
    if not isinstance(per_layer, dict) or not all(isinstance(v, dict) for v in per_layer.values()):
        raise ConfigError(
            f"The key 'per_layer_config' is {shown(per_layer)}, but it must map layer indices "
            'to overrides, such as {"5": {"head_dim": 512}}.',
            field="per_layer_config",
            value=per_layer,
        )
    head_dim = _get(hf, "head_dim", int, 256)
    kv_heads = _get(hf, "num_key_value_heads", int, GEMMA4_HF_DEFAULTS["num_key_value_heads"])
    shapes = set()
    for i, kind in enumerate(types):
        over = per_layer.get(str(i), {})
        unknown = set(over) - {"head_dim", "num_key_value_heads"}
        if unknown or (kind == "sliding" and over):
            raise ConfigError(
                f"The key 'per_layer_config' overrides {sorted(over)} of layer {i}, but lmhub's "
                "Gemma 4 lets only the global layers differ, in 'head_dim' and "
                "'num_key_value_heads', all alike.",
                field="per_layer_config",
                value=over,
            )
        if kind == "full":
            key = f"per_layer_config.{i}"
            dim = json_value(over.get("head_dim", head_dim), int, key=f"{key}.head_dim")
            kv = json_value(
                over.get("num_key_value_heads", kv_heads),
                int | None,
                key=f"{key}.num_key_value_heads",
            )
            shapes.add((dim, kv))
    if len(shapes) > 1:
        raise ConfigError(
            f"The key 'per_layer_config' gives the global layers different shapes "
            f"{sorted(shapes)}, but lmhub's Gemma 4 needs them alike.",
            field="per_layer_config",
            value=per_layer,
        )
    if not shapes:
        return head_dim, None
    global_dim, global_kv = shapes.pop()
    return global_dim, None if global_kv == kv_heads else global_kv


def gemma4_config_from_hf(hf: Mapping[str, Any]) -> Gemma4Config:
    """Build a :class:`Gemma4Config` from a Hugging Face Gemma 4 ``config.json`` dict (text
    only, or the multimodal one's ``text_config``).

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    text = _text(hf)
    num_layers = _get(text, "num_hidden_layers", int, 30)
    types = _layer_types(text, num_layers)
    k_eq_v = _get(text, "attention_k_eq_v", bool, False)
    eps = _get(text, "rms_norm_eps", float, 1e-6)
    moe = None
    if _get(text, "enable_moe_block", bool, False):
        moe = MoeConfig(
            num_experts=_get(text, "num_experts", int, None),
            top_k=_get(text, "top_k_experts", int, None),
            expert_inner_dim=_get(text, "moe_intermediate_size", int, None),
            scoring="softmax",
            norm_topk=True,
            activation="gelu_tanh",
            router_norm_eps=eps,
            per_expert_scale=True,
        )
    window = _get(text, "sliding_window", int, 512)
    if text.get("use_bidirectional_attention") == "all":
        raise ConfigError(
            "The config sets 'use_bidirectional_attention' to 'all' (an encoder-style Gemma 4); "
            "lmhub's Gemma 4 loads the causal models. Run the model with causal=False instead.",
            field="use_bidirectional_attention",
            value="all",
        )
    per_layer_dim = _get(text, "hidden_size_per_layer_input", int, 0)
    if "hidden_size_per_layer_input" not in text:
        per_layer_dim = 256  # transformers' default
    global_dim, global_kv = _global_shape(text, types, k_eq_v)
    rope = _rope(text)
    flat = {k: v for k, v in text.items() if k not in ("rope_parameters", "rope_scaling")}
    if flat.get("num_key_value_heads") is None:  # transformers' Gemma 4 default, not one per head
        flat["num_key_value_heads"] = GEMMA4_HF_DEFAULTS["num_key_value_heads"]
    return decoder_config_from_hf(
        without_activation({**flat, "rope_parameters": rope["rope_parameters"]}),
        Gemma4Config,
        defaults=GEMMA4_HF_DEFAULTS,
        fixed={
            **GEMMA4_HF_FIXED,
            "sliding_window": window if "sliding" in types else None,
            # transformers' default pattern reads as None, as the presets spell it.
            "layer_types": None if types == default_layer_types(num_layers) else types,
            "rope_local_theta": rope["rope_local_theta"],
        },
        ffn_activation=activation_from_hf(
            {"hidden_activation": text.get("hidden_activation", "gelu_pytorch_tanh")},
            "hidden_activation",
        ),
        final_logit_softcap=_get(text, "final_logit_softcapping", float, None),
        global_head_dim=global_dim,
        attn_k_eq_v=k_eq_v,
        num_global_kv_heads=global_kv,
        per_layer_dim=per_layer_dim,
        per_layer_vocab_size=_get(text, "vocab_size_per_layer_input", int, 262_144),
        num_kv_shared_layers=_get(text, "num_kv_shared_layers", int, 0),
        double_wide_shared_ffn=_get(text, "use_double_wide_mlp", bool, False),
        moe=moe,
    )


def _overrides(config: Gemma4Config, layer_idx: int) -> dict[str, int]:
    over = {"head_dim": config.layer_head_dim(layer_idx)}
    if config.num_global_kv_heads:
        over["num_key_value_heads"] = config.num_global_kv_heads
    return over


def gemma4_config_to_hf(config: Gemma4Config) -> dict[str, Any]:
    """Build a Hugging Face ``gemma4_text`` ``config.json`` dict (without model_type /
    architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' Gemma 4 lacks.
    """
    if config.resolved_layer_types()[-1] != "full":
        raise ConfigError(
            "transformers' Gemma 4 makes the last layer global, but the config's is sliding. "
            "End 'layer_types' with 'full'.",
            field="layer_types",
        )
    hf = decoder_config_to_hf(config, fixed=GEMMA4_HF_FIXED, model_type="gemma4_text", own=_OWN)
    del hf["hidden_act"]  # Gemma 4 reads `hidden_activation`
    for key in ("rope_theta", "rope_scaling"):
        hf.pop(key, None)
    full = rope_to_hf(config.rope_theta, config.rope_scaling, max_seq_len=config.max_seq_len)
    local = config.rope_local_theta or config.rope_theta
    hf["rope_parameters"] = {
        "full_attention": full["rope_parameters"],
        "sliding_attention": {"rope_type": "default", "rope_theta": float(local)},
    }
    windows = gemma_windows_to_hf(config)  # type: ignore[arg-type]
    hf.update(
        windows,
        sliding_window=config.sliding_window or 512,
        hidden_activation=ACTIVATION_NAMES[config.ffn_activation],
        final_logit_softcapping=config.final_logit_softcap,
        global_head_dim=config.global_head_dim or config.resolved_head_dim(),
        attention_k_eq_v=config.attn_k_eq_v,
        num_global_key_value_heads=config.num_global_kv_heads,
        hidden_size_per_layer_input=config.per_layer_dim,
        vocab_size_per_layer_input=config.per_layer_vocab_size,
        num_kv_shared_layers=config.num_kv_shared_layers,
        # transformers 5.23 reads the global layers' shape from here (earlier ones from the
        # two keys above, the heads only with attention_k_eq_v).
        per_layer_config={
            str(i): _overrides(config, i)
            for i in range(config.num_layers)
            if config.resolved_layer_types()[i] == "full"
        },
        use_double_wide_mlp=config.double_wide_shared_ffn,
        enable_moe_block=config.moe is not None,
    )
    moe = config.moe
    if moe is None:
        return hf
    expected = ("softmax", True, 1.0, 1, 0, None, 0, None, True, "gelu_tanh", config.norm_eps)
    got = (
        moe.scoring,
        moe.norm_topk,
        moe.routed_scaling_factor,
        moe.num_groups,
        moe.first_dense_layers,
        moe.dense_layers or None,
        moe.shared_width(),
        moe.swiglu_limit,
        moe.per_expert_scale,
        moe.activation,
        moe.router_norm_eps,
    )
    if got != expected or moe.router_bias or moe.expert_bias or moe.correction_bias:
        raise ConfigError(
            "The config's mixture of experts differs from Gemma 4's (softmax top-k renormalised "
            "with per-expert scales, a normed router input, GeGLU experts without biases or a "
            "shared expert, every layer sparse), so the model cannot be exported as a native "
            "'gemma4_text' directory. Export with remote_code=True.",
            field="moe",
        )
    hf.update(
        num_experts=moe.num_experts,
        top_k_experts=moe.top_k,
        moe_intermediate_size=moe.expert_inner_dim,
    )
    return hf
