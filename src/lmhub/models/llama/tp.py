"""The tensor-parallel plan of the Llama decoder (and Mistral, Qwen2, Qwen3, which share it).

Megatron-style: q/k/v and gate/up split by output features (each rank owns whole heads and a
slice of the FFN), o/down split by input features, so each block needs one all-reduce for
attention and one for the FFN. Untied embeddings and output heads are split by vocabulary when
it divides evenly; tied ones stay whole (one matrix cannot take both splits' layouts here).
"""

from __future__ import annotations

from lmhub.models.llama.config import LlamaConfig
from lmhub.parallel.plan import TpPlan, TpStyle, require_divisible


def llama_tp_plan(config: LlamaConfig, tp_size: int) -> TpPlan:
    """Return the plan for ``config`` over ``tp_size`` ranks.

    Raises:
        ParallelLayoutError: ``tp_size`` does not divide the heads, the key-value heads (GQA) or
            the FFN width.
    """
    family = type(config).__name__
    require_divisible("num_heads", config.num_heads, tp_size, family=family)
    require_divisible("num_kv_heads", config.num_kv_heads, tp_size, family=family)
    require_divisible("ffn_inner_dim", config.ffn_inner_dim, tp_size, family=family)
    plan: dict[str, TpStyle] = {
        "layers.*.attn.q_proj": "colwise",
        "layers.*.attn.k_proj": "colwise",
        "layers.*.attn.v_proj": "colwise",
        "layers.*.attn.o_proj": "rowwise",
        "layers.*.ffn.gate_proj": "colwise",
        "layers.*.ffn.up_proj": "colwise",
        "layers.*.ffn.down_proj": "rowwise",
    }
    if not config.tie_embeddings and config.vocab_size % tp_size == 0:
        plan["embed"] = "vocab_embedding"
        plan["lm_head"] = "vocab_output"
    return plan
