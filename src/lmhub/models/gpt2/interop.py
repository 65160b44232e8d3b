"""GPT-2 <-> Hugging Face: the weight map (Conv1D transposes, fused c_attn split into q/k/v)
and the config.json mapping.

transformers' GPT-2 keeps its projections in ``Conv1D`` modules, whose weights are ``[in, out]``
(the transpose of ``nn.Linear``), and fuses q/k/v into one ``c_attn`` of ``[in, 3 * out]``.
lmhub's shared attention keeps q/k/v apart, so the map transposes and splits on import and joins
and transposes back on export. Checkpoints saved from ``GPT2Model`` (as ``openai-community/gpt2``
is) lack the ``transformer.`` prefix; both spellings load, and export writes the prefixed one
``GPT2LMHeadModel`` saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, Transpose, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gpt2.config import GPT2Config
from lmhub.models.hf_dir import json_value

_QKV = ("q_proj", "k_proj", "v_proj")


def _rules(prefix: str) -> list[KeyRule]:
    h, layer = f"{prefix}h.{{i}}", "layers.{i}"
    conv = (Transpose(),)
    return [
        KeyRule(f"{prefix}wte.weight", "embed.weight"),
        KeyRule(f"{prefix}wpe.weight", "pos_embed.weight"),
        KeyRule(f"{h}.ln_1.{{p}}", f"{layer}.attn_norm.{{p}}"),
        KeyRule(
            f"{h}.attn.c_attn.weight",
            tuple(f"{layer}.attn.{q}.weight" for q in _QKV),
            ops=(Transpose(), Chunk(dim=0)),
        ),
        KeyRule(
            f"{h}.attn.c_attn.bias",
            tuple(f"{layer}.attn.{q}.bias" for q in _QKV),
            ops=(Chunk(dim=0),),
        ),
        KeyRule(f"{h}.attn.c_proj.weight", f"{layer}.attn.o_proj.weight", ops=conv),
        KeyRule(f"{h}.attn.c_proj.bias", f"{layer}.attn.o_proj.bias"),
        KeyRule(f"{h}.ln_2.{{p}}", f"{layer}.ffn_norm.{{p}}"),
        KeyRule(f"{h}.mlp.c_fc.weight", f"{layer}.ffn.fc1.weight", ops=conv),
        KeyRule(f"{h}.mlp.c_fc.bias", f"{layer}.ffn.fc1.bias"),
        KeyRule(f"{h}.mlp.c_proj.weight", f"{layer}.ffn.fc2.weight", ops=conv),
        KeyRule(f"{h}.mlp.c_proj.bias", f"{layer}.ffn.fc2.bias"),
        KeyRule(f"{prefix}ln_f.{{p}}", "final_norm.{p}"),
    ]


GPT2_WEIGHT_MAP: Final = WeightMap(
    [*_rules("transformer."), *_rules(""), KeyRule("lm_head.weight", "lm_head.weight")],
    tied={"lm_head.weight": "embed.weight"},
    # Causal-mask tables older transformers saved as buffers.
    ignored=[f"{p}h.{{i}}.attn.{b}" for p in ("transformer.", "") for b in ("bias", "masked_bias")],
)

HF_ACTIVATIONS: Final[Mapping[str, str]] = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
}
"""transformers' activation names -> lmhub's (the first per lmhub name is written back)."""

_HF_FIELDS: Final[tuple[tuple[str, str, Any, Any], ...]] = (
    # (HF key, lmhub field, type, transformers' default)
    ("n_embd", "model_dim", int, 768),
    ("n_layer", "num_layers", int, 12),
    ("n_head", "num_heads", int, 12),
    ("n_positions", "max_seq_len", int, 1024),
    ("vocab_size", "vocab_size", int, 50257),
    ("layer_norm_epsilon", "norm_eps", float, 1e-5),
    ("attn_pdrop", "dropout_p", float, 0.1),
    ("initializer_range", "init_std", float, 0.02),
    ("tie_word_embeddings", "tie_embeddings", bool, True),
    ("bos_token_id", "bos_token_id", int | None, 50256),
    ("eos_token_id", "eos_token_id", int | list[int] | None, 50256),
    ("pad_token_id", "pad_token_id", int | None, None),
)

# Options of transformers' GPT-2 that lmhub's attention does not have, with the value it needs.
_HF_REQUIRED: Final[Mapping[str, bool]] = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
}


def hf_activation(hf: Mapping[str, Any], key: str, default: str) -> str:
    """Read the activation under ``key`` as an lmhub activation name.

    Raises:
        ConfigError: naming ``key`` if lmhub has no such activation.
    """
    name = json_value(hf.get(key, default), str, key=key)
    if name not in HF_ACTIVATIONS:
        raise ConfigError(
            f"The key '{key}' is '{name}', which lmhub does not implement. lmhub reads: "
            f"{', '.join(HF_ACTIVATIONS)}.",
            field=key,
            value=name,
        )
    return HF_ACTIVATIONS[name]


def activation_to_hf(activation: str) -> str:
    """Return transformers' name of an lmhub activation."""
    return next(hf for hf, ours in HF_ACTIVATIONS.items() if ours == activation)


def gpt2_config_from_hf(hf: Mapping[str, Any]) -> GPT2Config:
    """Build a :class:`GPT2Config` from a Hugging Face GPT-2 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of an ill-typed or unsupported
            value.
    """
    values = {
        field: json_value(hf.get(key, default), tp, key=key)
        for key, field, tp, default in _HF_FIELDS
    }
    for key, needed in _HF_REQUIRED.items():
        if json_value(hf.get(key, needed), bool, key=key) != needed:
            raise ConfigError(
                f"The key '{key}' is {str(not needed).lower()}, which lmhub's GPT-2 does not "
                f"support. Use a model with '{key}' {str(needed).lower()}.",
                field=key,
                value=not needed,
            )
    inner = json_value(hf.get("n_inner"), int | None, key="n_inner")
    return GPT2Config(
        **values,
        ffn_inner_dim=inner if inner is not None else 4 * values["model_dim"],
        activation=hf_activation(hf, "activation_function", "gelu_new"),
    )


def gpt2_config_to_hf(config: GPT2Config) -> dict[str, Any]:
    """Build a Hugging Face GPT-2 ``config.json`` dict (without model_type/architectures).

    lmhub drops out attention weights only, so the residual and embedding dropouts are 0.
    """
    return {
        **{key: getattr(config, field) for key, field, _, _ in _HF_FIELDS},
        "n_inner": config.ffn_inner_dim,
        "activation_function": activation_to_hf(config.activation),
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        **_HF_REQUIRED,
    }
