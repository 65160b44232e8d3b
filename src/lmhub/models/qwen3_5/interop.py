"""Qwen3.5 <-> Hugging Face: the checkpoint key map and the config.json mapping.

transformers has a text-only class per size kind (``qwen3_5_text`` / ``qwen3_5_moe_text``,
keys under ``model.``) and the published multimodal one (``qwen3_5`` / ``qwen3_5_moe``: the text
config under ``text_config``, keys under ``model.language_model.``, a vision tower under
``model.visual.`` and a multi-token-prediction head under ``mtp.``). lmhub reads both (the
vision tower and the MTP head are skipped) and writes the text-only form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, Stack, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.hf_dir import json_value
from lmhub.models.llama.interop import decoder_config_from_hf, decoder_config_to_hf
from lmhub.models.qwen3_5.config import Qwen3_5Config
from lmhub.nn.moe import MoeConfig

_LINEAR_PARAMS: Final = (
    "in_proj_qkv.weight",
    "in_proj_z.weight",
    "in_proj_b.weight",
    "in_proj_a.weight",
    "conv1d.weight",
    "dt_bias",
    "A_log",
    "norm.weight",
    "out_proj.weight",
)


def _rules(p: str) -> list[KeyRule]:
    """The rules of one key prefix (``model.`` or ``model.language_model.``)."""
    return [
        KeyRule(f"{p}embed_tokens.weight", "embed.weight"),
        *(
            KeyRule(f"{p}layers.{{i}}.linear_attn.{name}", f"layers.{{i}}.attn.{name}")
            for name in _LINEAR_PARAMS
        ),
        KeyRule(f"{p}layers.{{i}}.self_attn.{{proj}}.{{w}}", "layers.{i}.attn.{proj}.{w}"),
        KeyRule(f"{p}layers.{{i}}.mlp.gate.weight", "layers.{i}.ffn.router.weight"),
        KeyRule(
            f"{p}layers.{{i}}.mlp.experts.{{e}}.{{proj}}.weight",
            "layers.{i}.ffn.experts.{proj}",
            ops=(Stack("e", "moe.num_experts"),),
        ),
        KeyRule(
            f"{p}layers.{{i}}.mlp.shared_expert.{{proj}}.weight",
            "layers.{i}.ffn.shared_experts.{proj}.weight",
        ),
        KeyRule(
            f"{p}layers.{{i}}.mlp.shared_expert_gate.weight", "layers.{i}.ffn.shared_gate.weight"
        ),
        KeyRule(f"{p}layers.{{i}}.mlp.{{proj}}.weight", "layers.{i}.ffn.{proj}.weight"),
        KeyRule(f"{p}layers.{{i}}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
        KeyRule(f"{p}layers.{{i}}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
        KeyRule(f"{p}norm.weight", "final_norm.weight"),
    ]


QWEN3_5_WEIGHT_MAP: Final = WeightMap(
    [
        *_rules("model."),  # first: export writes the text-only layout
        *_rules("model.language_model."),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    ignored=("model.visual.{rest:path}", "mtp.{rest:path}"),
)

QWEN3_5_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    "vocab_size": 248_320,
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "attention_dropout": 0.0,
    "attention_bias": False,
    "initializer_range": 0.02,
    "bos_token_id": None,
    "eos_token_id": None,
}
"""transformers' Qwen3_5TextConfig defaults for the shared keys a config.json may leave out."""

QWEN3_5_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": True,
    "norm_unit_offset": True,
    "sliding_window": None,
    "layer_types": None,
}
"""What transformers' Qwen3.5 hard-codes."""

# config.json key -> (lmhub field, transformers' default)
_LINEAR_KEYS: Final[Mapping[str, tuple[str, int]]] = {
    "linear_num_key_heads": ("linear_num_key_heads", 16),
    "linear_num_value_heads": ("linear_num_value_heads", 32),
    "linear_key_head_dim": ("linear_key_head_dim", 128),
    "linear_value_head_dim": ("linear_value_head_dim", 128),
    "linear_conv_kernel_dim": ("linear_conv_kernel", 4),
}

_MIXERS: Final = {"linear_attention": "linear", "full_attention": "full"}


def _text(hf: Mapping[str, Any]) -> Mapping[str, Any]:
    """The text model's keys: ``text_config`` of a multimodal config, else the whole dict."""
    text = hf.get("text_config")
    if text is None:
        return hf
    if not isinstance(text, dict):
        raise ConfigError(
            f"The key 'text_config' is {text!r}, but it must be a mapping of the text model's "
            "keys.",
            field="text_config",
            value=text,
        )
    return text


def _partial_rotary(hf: Mapping[str, Any]) -> float:
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if isinstance(params, dict) and params.get("partial_rotary_factor") is not None:
        return json_value(
            params["partial_rotary_factor"], float, key="rope_parameters.partial_rotary_factor"
        )
    return json_value(hf.get("partial_rotary_factor", 0.25), float, key="partial_rotary_factor")


def _without_partial(hf: Mapping[str, Any]) -> dict[str, Any]:
    """``hf`` as the shared RoPE reader expects it (the partial factor and the multimodal RoPE
    sections, which are the identity on text, taken out)."""
    out = {k: v for k, v in hf.items() if k != "partial_rotary_factor"}
    for where in ("rope_parameters", "rope_scaling"):
        params = out.get(where)
        if isinstance(params, dict):
            out[where] = {
                k: v
                for k, v in params.items()
                if k not in ("partial_rotary_factor", "mrope_section", "mrope_interleaved")
            }
    return out


def _mixers(hf: Mapping[str, Any], num_layers: int) -> list[Any] | None:
    types = hf.get("layer_types")
    if types is None:
        interval = json_value(
            hf.get("full_attention_interval", 4), int, key="full_attention_interval"
        )
        types = [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(num_layers)
        ]
    types = json_value(types, list[str], key="layer_types")
    bad = [t for t in types if t not in _MIXERS]
    if bad:
        raise ConfigError(
            f"The key 'layer_types' holds '{bad[0]}', which Qwen3.5 does not have. Use "
            "'linear_attention' or 'full_attention'.",
            field="layer_types",
            value=bad[0],
        )
    mixers = [_MIXERS[t] for t in types]
    default = Qwen3_5Config(num_layers=len(mixers)).resolved_mixer_types()
    return None if mixers == default else mixers  # the default pattern reads as None


def _get(hf: Mapping[str, Any], key: str, tp: Any, default: Any) -> Any:
    return json_value(hf[key], tp, key=key) if hf.get(key) is not None else default


def qwen3_5_config_from_hf(hf: Mapping[str, Any]) -> Qwen3_5Config:
    """Build a :class:`Qwen3_5Config` from a Hugging Face Qwen3.5 ``config.json`` dict (dense
    or MoE, text-only or multimodal).

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    text = _text(hf)
    num_layers = _get(text, "num_hidden_layers", int, 32)
    moe = None
    defaults = dict(QWEN3_5_HF_DEFAULTS)
    if text.get("num_experts") is not None:
        inner = _get(text, "moe_intermediate_size", int, 512)
        defaults["intermediate_size"] = inner  # the MoE config has no dense width
        moe = MoeConfig(
            num_experts=_get(text, "num_experts", int, 256),
            top_k=_get(text, "num_experts_per_tok", int, 8),
            expert_inner_dim=inner,
            scoring="softmax",
            norm_topk=True,
            shared_inner_dim=_get(text, "shared_expert_intermediate_size", int, 512),
            shared_gate=True,
            aux_loss_coef=_get(text, "router_aux_loss_coef", float, 0.001),
        )
    extra = {field: _get(text, key, int, default) for key, (field, default) in _LINEAR_KEYS.items()}
    return decoder_config_from_hf(
        _without_partial(text),
        Qwen3_5Config,
        defaults=defaults,
        fixed={**QWEN3_5_HF_FIXED, "partial_rotary_factor": _partial_rotary(text)},
        mixer_types=_mixers(text, num_layers),
        moe=moe,
        **extra,
    )


def qwen3_5_config_to_hf(config: Qwen3_5Config) -> dict[str, Any]:
    """Build a Hugging Face Qwen3.5 text ``config.json`` dict (``qwen3_5_text``, or
    ``qwen3_5_moe_text`` with its class for a MoE config).

    Raises:
        ConfigError: if the config uses a knob transformers' Qwen3.5 lacks.
    """
    moe = config.moe
    hf = decoder_config_to_hf(
        config,
        fixed=QWEN3_5_HF_FIXED,
        model_type="qwen3_5_text",
        own=("partial_rotary_factor", "norm_unit_offset", "moe"),
    )
    hf["rope_parameters"]["partial_rotary_factor"] = config.partial_rotary_factor
    hf.update(
        {key: getattr(config, field) for key, (field, _) in _LINEAR_KEYS.items()},
        layer_types=[f"{t}_attention" for t in config.resolved_mixer_types()],
        partial_rotary_factor=config.partial_rotary_factor,
    )
    if moe is None:
        return hf
    expected = ("softmax", True, True, 1.0, 1, 0, None)
    got = (
        moe.scoring,
        moe.norm_topk,
        moe.shared_gate,
        moe.routed_scaling_factor,
        moe.num_groups,
        moe.first_dense_layers,
        moe.dense_layers or None,
    )
    if got != expected or moe.shared_inner_dim is None:
        raise ConfigError(
            "The config's mixture of experts differs from Qwen3.5-MoE's (softmax routing with "
            "renormalised top-k, a sigmoid-gated shared expert of its own width, every layer "
            "sparse), so the model cannot be exported as a native 'qwen3_5_moe_text' directory. "
            "Export with remote_code=True.",
            field="moe",
        )
    del hf["intermediate_size"]
    return {
        **hf,
        "model_type": "qwen3_5_moe_text",
        "architectures": ["Qwen3_5MoeForCausalLM"],
        "num_experts": moe.num_experts,
        "num_experts_per_tok": moe.top_k,
        "moe_intermediate_size": moe.expert_inner_dim,
        "shared_expert_intermediate_size": moe.shared_inner_dim,
        "router_aux_loss_coef": moe.aux_loss_coef,
    }
