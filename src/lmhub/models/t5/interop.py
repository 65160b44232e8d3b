"""T5 <-> Hugging Face: the weight map and the config.json mapping (``T5ForConditionalGeneration``).

transformers keeps one shared embedding (``shared``) that both stacks' ``embed_tokens`` alias,
numbers sublayers (``layer.0`` self-attention, ``layer.1`` cross-attention in the decoder, the
last one the feed-forward) and stores the relative bias in the first block of each stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.errors import ConfigError
from lmhub.models.gpt2.interop import HF_ACTIVATIONS, activation_to_hf
from lmhub.models.hf_dir import json_value
from lmhub.models.t5.config import T5Config

_PROJ = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
_FFN = {"wi_0": "gate_proj", "wi_1": "up_proj", "wo": "down_proj"}


def _stack_rules(stack: str, causal: bool) -> list[KeyRule]:
    block, layer = f"{stack}.block.{{i}}.layer", f"{stack}.layers.{{i}}"
    ffn_at = 2 if causal else 1
    rules = [
        KeyRule(
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            f"{stack}.rel_bias.weight",
        ),
        KeyRule(f"{block}.0.layer_norm.weight", f"{layer}.self_attn_norm.weight"),
        KeyRule(f"{block}.{ffn_at}.layer_norm.weight", f"{layer}.ffn_norm.weight"),
        KeyRule(f"{stack}.final_layer_norm.weight", f"{stack}.final_norm.weight"),
    ]
    for hf, ours in _PROJ.items():
        rules.append(
            KeyRule(f"{block}.0.SelfAttention.{hf}.weight", f"{layer}.self_attn.{ours}.weight")
        )
        if causal:
            rules.append(
                KeyRule(
                    f"{block}.1.EncDecAttention.{hf}.weight", f"{layer}.cross_attn.{ours}.weight"
                )
            )
    if causal:
        rules.append(KeyRule(f"{block}.1.layer_norm.weight", f"{layer}.cross_attn_norm.weight"))
    for hf, ours in _FFN.items():
        rules.append(
            KeyRule(f"{block}.{ffn_at}.DenseReluDense.{hf}.weight", f"{layer}.ffn.{ours}.weight")
        )
    return rules


T5_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("shared.weight", "embed.weight"),
        *_stack_rules("encoder", causal=False),
        *_stack_rules("decoder", causal=True),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
    # Aliases of `shared` that some transformers versions write out, and a cross-attention
    # bias old checkpoints carry that T5 never reads (transformers ignores it too).
    ignored=[
        "encoder.embed_tokens.weight",
        "decoder.embed_tokens.weight",
        "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
    ],
)

_HF_FIELDS: Final[tuple[tuple[str, str, Any, Any], ...]] = (
    # (HF key, lmhub field, type, transformers' default)
    ("d_model", "model_dim", int, 512),
    ("num_layers", "num_layers", int, 6),
    ("num_heads", "num_heads", int, 8),
    ("d_kv", "head_dim", int, 64),
    ("d_ff", "ffn_inner_dim", int, 2048),
    ("vocab_size", "vocab_size", int, 32128),
    ("n_positions", "max_seq_len", int, 512),
    ("relative_attention_num_buckets", "num_buckets", int, 32),
    ("relative_attention_max_distance", "max_distance", int, 128),
    ("layer_norm_epsilon", "norm_eps", float, 1e-6),
    ("tie_word_embeddings", "tie_embeddings", bool, True),
    ("dropout_rate", "dropout_p", float, 0.1),
    ("initializer_factor", "init_factor", float, 1.0),
    ("pad_token_id", "pad_token_id", int | None, 0),
    ("eos_token_id", "eos_token_id", int | None, 1),
    ("bos_token_id", "bos_token_id", int | None, None),
)


def t5_config_from_hf(hf: Mapping[str, Any]) -> T5Config:
    """Build a :class:`T5Config` from a Hugging Face T5 ``config.json`` dict.

    Raises:
        ConfigError: naming the key of an ill-typed value or a feed-forward lmhub lacks.
    """
    values = {
        field: json_value(hf.get(key, default), tp, key=key)
        for key, field, tp, default in _HF_FIELDS
    }
    decoder_layers = json_value(hf.get("num_decoder_layers"), int | None, key="num_decoder_layers")
    proj = json_value(hf.get("feed_forward_proj", "relu"), str, key="feed_forward_proj")
    # transformers reads "gated-gelu" as the tanh approximation (its "gelu_new").
    act = {"gated-gelu": "gelu_new"}.get(proj, proj.removeprefix("gated-"))
    if not proj.startswith("gated-") or act not in HF_ACTIVATIONS:
        raise ConfigError(
            f"The key 'feed_forward_proj' is '{proj}', which lmhub's T5 does not implement: it "
            "has the gated feed-forward of T5 v1.1 and Flan-T5. Use 'gated-gelu' or "
            "'gated-silu'.",
            field="feed_forward_proj",
            value=proj,
        )
    start = json_value(hf.get("decoder_start_token_id", 0), int, key="decoder_start_token_id")
    # transformers v5 writes whether to scale; older configs meant it by a tied head.
    scale = json_value(
        hf.get("scale_decoder_outputs", values["tie_embeddings"]), bool, key="scale_decoder_outputs"
    )
    return T5Config(
        **values,
        num_decoder_layers=decoder_layers if decoder_layers is not None else values["num_layers"],
        activation=HF_ACTIVATIONS[act],
        decoder_start_token_id=start,
        scale_logits=scale,
    )


def t5_config_to_hf(config: T5Config) -> dict[str, Any]:
    """Build a Hugging Face T5 ``config.json`` dict (without model_type/architectures)."""
    act = activation_to_hf(config.activation)
    act = "gelu" if act == "gelu_new" else act
    out = {key: getattr(config, field) for key, field, _, _ in _HF_FIELDS}
    out["d_kv"] = config.resolved_head_dim()
    return {
        **out,
        "num_decoder_layers": config.num_decoder_layers,
        "feed_forward_proj": f"gated-{act}",
        "decoder_start_token_id": config.decoder_start_token_id,
        "scale_decoder_outputs": config.scale_logits,
        "is_encoder_decoder": True,
    }
