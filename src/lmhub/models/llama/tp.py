"""The tensor-parallel plan of the Llama decoder, and of every family built on it (Mistral,
Qwen2/3, Gemma 1/2/3, Phi-3, Granite, OLMo 2/3, SmolLM3).

Megatron-style: q/k/v and gate/up split by output features (each rank owns whole heads and a
slice of the FFN), o/down split by input features, so each block needs one all-reduce for
attention and one for the FFN. Per-head q/k norms (Qwen3, Gemma 3) act on each rank's own heads.
Norms over the whole q/k projection (OLMo 2/3) need every head: there q/k/v are computed split
and gathered whole (attention then runs on every rank), and o takes the whole input, as
transformers' plan for OLMo 2 does. Phi-3's fused qkv and gate/up exist only in its checkpoints
(the weight map splits them), so its model takes this plan as is. Untied embeddings and output
heads are split by vocabulary when it divides evenly; tied ones stay whole (one matrix cannot
take both splits' layouts here).
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
    whole_qk = config.qk_norm and config.qk_norm_scope == "projection"
    qkv: TpStyle = "colwise_gather" if whole_qk else "colwise"
    plan: dict[str, TpStyle] = {
        "layers.*.attn.q_proj": qkv,
        "layers.*.attn.k_proj": qkv,
        "layers.*.attn.v_proj": qkv,
        "layers.*.attn.o_proj": "rowwise_from_replicated" if whole_qk else "rowwise",
        "layers.*.ffn.gate_proj": "colwise",
        "layers.*.ffn.up_proj": "colwise",
        "layers.*.ffn.down_proj": "rowwise",
    }
    if not config.tie_embeddings and config.vocab_size % tp_size == 0:
        plan["embed"] = "vocab_embedding"
        plan["lm_head"] = "vocab_output"
    return plan
