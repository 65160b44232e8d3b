"""The tensor-parallel plan of Gemma 4: Llama's Megatron-style split, layer by layer.

q/k/v and gate/up are split by output features (each rank owns whole heads; the per-head q/k/v
norms act on each rank's own heads, and ``attn_k_eq_v`` values are the rank's own keys), o and
down by input features. The plan names each layer's modules, since the KV-sharing layers have no
k/v projections and ``attn_k_eq_v`` global layers no value projection. In the MoE model the
dense feed-forward beside the experts is split the same way; the router, the stacked experts and
the per-layer embeddings stay whole on every rank. Embeddings are tied, so they stay whole.
"""

from __future__ import annotations

from lmhub.models.gemma4.config import Gemma4Config
from lmhub.parallel.plan import TpPlan, TpStyle, require_divisible


def gemma4_tp_plan(config: Gemma4Config, tp_size: int) -> TpPlan:
    """Return the plan for ``config`` over ``tp_size`` ranks.

    Raises:
        ParallelLayoutError: ``tp_size`` does not divide the heads, a layer's key-value heads
            or the feed-forward width.
    """
    family = type(config).__name__
    require_divisible("num_heads", config.num_heads, tp_size, family=family)
    require_divisible("num_kv_heads", config.num_kv_heads, tp_size, family=family)
    if config.num_global_kv_heads:
        require_divisible("num_global_kv_heads", config.num_global_kv_heads, tp_size, family=family)
    require_divisible("ffn_inner_dim", config.ffn_inner_dim, tp_size, family=family)
    types = config.resolved_layer_types()
    sources = config.kv_sources()
    plan: dict[str, TpStyle] = {}
    for i in range(config.num_layers):
        attn = f"layers.{i}.attn"
        plan[f"{attn}.q_proj"] = "colwise"
        if sources[i] is None:
            plan[f"{attn}.k_proj"] = "colwise"
            if not (config.attn_k_eq_v and types[i] == "full"):
                plan[f"{attn}.v_proj"] = "colwise"
        plan[f"{attn}.o_proj"] = "rowwise"
        ffn = f"layers.{i}.ffn.dense"
        plan[f"{ffn}.gate_proj"] = "colwise"
        plan[f"{ffn}.up_proj"] = "colwise"
        plan[f"{ffn}.down_proj"] = "rowwise"
    if not config.tie_embeddings and config.vocab_size % tp_size == 0:
        plan["embed"] = "vocab_embedding"
        plan["lm_head"] = "vocab_output"
    return plan
