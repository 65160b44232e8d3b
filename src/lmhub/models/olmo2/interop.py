"""OLMo 2 <-> Hugging Face: the checkpoint key map (post-sublayer norms only) and the
config.json mapping. OLMo 3 shares the key map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import KeyRule, WeightMap
from lmhub.models.llama.interop import (
    LLAMA_HF_DEFAULTS,
    decoder_config_from_hf,
    decoder_config_to_hf,
    drop_derived_head_dim,
)
from lmhub.models.olmo2.config import Olmo2Config

# HF's `post_attention_layernorm` is Llama's pre-FFN norm but OLMo 2's post-attention one; the
# whole-projection q/k norms are `self_attn.q_norm` / `self_attn.k_norm`, as in Qwen3.
OLMO2_WEIGHT_MAP = WeightMap(
    [
        KeyRule("model.embed_tokens.weight", "embed.weight"),
        KeyRule("model.layers.{i}.self_attn.{proj}.{p}", "layers.{i}.attn.{proj}.{p}"),
        KeyRule("model.layers.{i}.mlp.{proj}.{p}", "layers.{i}.ffn.{proj}.{p}"),
        KeyRule(
            "model.layers.{i}.post_attention_layernorm.weight", "layers.{i}.attn_post_norm.weight"
        ),
        KeyRule(
            "model.layers.{i}.post_feedforward_layernorm.weight", "layers.{i}.ffn_post_norm.weight"
        ),
        KeyRule("model.norm.weight", "final_norm.weight"),
        KeyRule("lm_head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)

OLMO2_HF_DEFAULTS: Final[Mapping[str, Any]] = {
    **LLAMA_HF_DEFAULTS,
    "vocab_size": 50304,
    "rms_norm_eps": 1e-5,
    "bos_token_id": None,
    "eos_token_id": 50279,
    "pad_token_id": 1,
}
"""transformers' Olmo2Config defaults for the keys a config.json may leave out."""

OLMO2_HF_FIXED: Final[Mapping[str, Any]] = {
    "attn_output_bias": None,
    "ffn_bias": False,
    "qk_norm": True,
    "qk_norm_scope": "projection",
    "sandwich_norms": True,
    "pre_norms": False,
}
"""What transformers' OLMo 2 hard-codes: whole-projection q/k norms, post-sublayer norms only,
``attention_bias`` on all four projections alike, no MLP bias."""

OLMO2_OWN_KNOBS: Final = ("qk_norm_scope", "sandwich_norms", "pre_norms")
"""The shared-config knobs OLMo 2 fixes to values other than the other families'."""


def olmo2_config_from_hf(hf: Mapping[str, Any]) -> Olmo2Config:
    """Build an :class:`Olmo2Config` from a Hugging Face OLMo 2 ``config.json`` dict.

    Raises:
        ConfigError: naming the ``config.json`` key (``field``) of a missing or ill-typed value.
    """
    fixed = {**OLMO2_HF_FIXED, "sliding_window": None, "layer_types": None}
    return decoder_config_from_hf(hf, Olmo2Config, defaults=OLMO2_HF_DEFAULTS, fixed=fixed)


def olmo2_config_to_hf(config: Olmo2Config) -> dict[str, Any]:
    """Build a Hugging Face OLMo 2 ``config.json`` dict (without model_type/architectures).

    Raises:
        ConfigError: if the config uses a knob transformers' OLMo 2 lacks (e.g. a window).
    """
    fixed = {**OLMO2_HF_FIXED, "sliding_window": None, "layer_types": None}
    hf = decoder_config_to_hf(config, fixed=fixed, model_type="olmo2", own=OLMO2_OWN_KNOBS)
    return drop_derived_head_dim(hf)
