"""The tensor-parallel plan of the decoders with a two-layer MLP (GPT-2, GPT-NeoX).

q/k/v (GPT-2's fused ``c_attn`` is split by the weight map on load) and ``fc1`` split by output
features, ``o_proj`` and ``fc2`` by input features: one all-reduce per attention and per MLP,
parallel-residual layers (GPT-NeoX) included. The learned positions of GPT-2 stay whole; an
untied vocabulary that divides evenly is split (GPT-NeoX), a tied one (GPT-2) stays whole.
"""

from __future__ import annotations

from typing import Protocol

from lmhub.parallel.plan import TpPlan, TpStyle, require_divisible


class MlpDecoderConfig(Protocol):
    """The fields the plan reads."""

    num_heads: int
    ffn_inner_dim: int
    vocab_size: int
    tie_embeddings: bool


def mlp_decoder_tp_plan(config: MlpDecoderConfig, tp_size: int) -> TpPlan:
    """Return the plan for ``config`` over ``tp_size`` ranks.

    Raises:
        ParallelLayoutError: ``tp_size`` does not divide the heads or the MLP width.
    """
    family = type(config).__name__
    require_divisible("num_heads", config.num_heads, tp_size, family=family)
    require_divisible("ffn_inner_dim", config.ffn_inner_dim, tp_size, family=family)
    plan: dict[str, TpStyle] = {
        "layers.*.attn.q_proj": "colwise",
        "layers.*.attn.k_proj": "colwise",
        "layers.*.attn.v_proj": "colwise",
        "layers.*.attn.o_proj": "rowwise",
        "layers.*.ffn.fc1": "colwise",
        "layers.*.ffn.fc2": "rowwise",
    }
    if not config.tie_embeddings and config.vocab_size % tp_size == 0:
        plan["embed"] = "vocab_embedding"
        plan["lm_head"] = "vocab_output"
    return plan
