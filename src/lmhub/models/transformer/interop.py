"""Transformer <-> Hugging Face M2M100 (NLLB's ``config.json``): the weight map and the config
mapping, where the shapes agree.

transformers' ``M2M100ForConditionalGeneration`` is this family's pre-norm form with one shared
source/target table (``model.shared``) and sinusoids placed from the padding id (a real token's
first position is ``pad_token_id + 1``); other configs of the family have no M2M100 form and
export as remote code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gpt2.interop import activation_to_hf, hf_activation
from lmhub.models.hf_dir import json_value
from lmhub.models.transformer.config import TransformerConfig

_ATTN = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "out_proj": "o_proj"}


def _stack_rules(stack: str, causal: bool) -> list[KeyRule]:
    hf, ours = f"model.{stack}.layers.{{i}}", f"{stack}.layers.{{i}}"
    attns = [("self_attn", "self_attn")] + ([("encoder_attn", "cross_attn")] if causal else [])
    rules = []
    for hf_attn, attn in attns:
        rules.append(KeyRule(f"{hf}.{hf_attn}_layer_norm.{{p}}", f"{ours}.{attn}_norm.{{p}}"))
        for hf_proj, proj in _ATTN.items():
            rules.append(KeyRule(f"{hf}.{hf_attn}.{hf_proj}.{{p}}", f"{ours}.{attn}.{proj}.{{p}}"))
    return [
        *rules,
        KeyRule(f"{hf}.fc1.{{p}}", f"{ours}.ffn.fc1.{{p}}"),
        KeyRule(f"{hf}.fc2.{{p}}", f"{ours}.ffn.fc2.{{p}}"),
        KeyRule(f"{hf}.final_layer_norm.{{p}}", f"{ours}.ffn_norm.{{p}}"),
        KeyRule(f"model.{stack}.layer_norm.{{p}}", f"{stack}.final_norm.{{p}}"),
    ]


M2M100_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("model.shared.weight", "embed.weight"),
        *_stack_rules("encoder", causal=False),
        *_stack_rules("decoder", causal=True),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    # Aliases of `model.shared`, and the sinusoid tables older versions saved.
    ignored=[
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "model.encoder.embed_positions.weights",
        "model.decoder.embed_positions.weights",
    ],
)

_HF_FIELDS: Final[tuple[tuple[str, str, Any, Any], ...]] = (
    # (HF key, lmhub field, type, transformers' default)
    ("d_model", "model_dim", int, 1024),
    ("encoder_layers", "num_layers", int, 12),
    ("decoder_layers", "num_decoder_layers", int, 12),
    ("encoder_attention_heads", "num_heads", int, 16),
    ("decoder_attention_heads", "num_decoder_heads", int, 16),
    ("encoder_ffn_dim", "ffn_inner_dim", int, 4096),
    ("vocab_size", "vocab_size", int, 128112),
    ("max_position_embeddings", "max_seq_len", int, 1024),
    ("scale_embedding", "scale_embeddings", bool, True),
    ("tie_word_embeddings", "tie_embeddings", bool, True),
    ("attention_dropout", "dropout_p", float, 0.1),
    ("bos_token_id", "bos_token_id", int | None, 0),
    ("eos_token_id", "eos_token_id", int | None, 2),
    ("decoder_start_token_id", "decoder_start_token_id", int, 2),
)


def m2m100_config_from_hf(hf: Mapping[str, Any]) -> TransformerConfig:
    """Build a :class:`TransformerConfig` from a Hugging Face M2M100/NLLB ``config.json`` dict.

    Raises:
        ConfigError: naming the key of an ill-typed value or of a shape lmhub cannot express.
    """
    values = {
        field: json_value(hf.get(key, default), tp, key=key)
        for key, field, tp, default in _HF_FIELDS
    }
    pad = json_value(hf.get("pad_token_id", 1), int, key="pad_token_id")
    decoder_ffn = json_value(hf.get("decoder_ffn_dim", 4096), int, key="decoder_ffn_dim")
    if decoder_ffn != values["ffn_inner_dim"]:
        raise ConfigError(
            f"The key 'decoder_ffn_dim' is {decoder_ffn} but 'encoder_ffn_dim' is "
            f"{values['ffn_inner_dim']}; lmhub's transformer has one MLP width for both stacks. "
            "Use a model whose two widths agree.",
            field="decoder_ffn_dim",
            value=decoder_ffn,
        )
    return TransformerConfig(
        **values,
        norm_order="pre",
        share_embeddings=True,
        activation=hf_activation(hf, "activation_function", "relu"),
        pad_token_id=pad,
        pos_offset=pad + 1,
    )


def m2m100_config_to_hf(config: TransformerConfig) -> dict[str, Any]:
    """Build a Hugging Face M2M100 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: naming the field of a config M2M100 cannot express (post-norm, separate
            source embeddings, positions not placed from the padding id); export such a model
            as remote code.
    """
    pad = config.pad_token_id
    needs = {
        "norm_order": (config.norm_order == "pre", "pre"),
        "share_embeddings": (config.share_embeddings, "true"),
        "pos_offset": (pad is not None and config.pos_offset == pad + 1, "pad_token_id + 1"),
        "norm_eps": (config.norm_eps == 1e-5, "1e-5"),
    }
    for field, (ok, wanted) in needs.items():
        if not ok:
            raise ConfigError(
                f"The transformer config's '{field}' is {getattr(config, field)!r}, but "
                f"M2M100 needs {wanted}. Export this model as remote code instead "
                "(remote_code=True, or `lmhub model construct --remote-code`).",
                field=field,
                value=getattr(config, field),
            )
    return {
        **{key: getattr(config, field) for key, field, _, _ in _HF_FIELDS},
        "decoder_ffn_dim": config.ffn_inner_dim,
        "pad_token_id": pad,
        "activation_function": activation_to_hf(config.activation),
        "dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "is_encoder_decoder": True,
    }
