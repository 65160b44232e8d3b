"""The weight map from the fused checkpoint layout many from-scratch trainers write.

Such checkpoints keep q/k/v as one ``wqkv`` matrix and gate/up as one ``w12``; the map splits
them into lmhub's separate projections on import (``Chunk`` sized by the bound config) and joins
them again on export, so a round trip is exact.
"""

from __future__ import annotations

from typing import Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, WeightMap

_E = "blocks.{i}"
_N = "layers.{i}"

PARALLEL_LM_WEIGHT_MAP: Final = WeightMap(
    [
        KeyRule("tok_emb.weight", "embed.weight"),
        KeyRule(
            f"{_E}.attn.wqkv.weight",
            tuple(f"{_N}.attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj")),
            ops=(Chunk(dim=0, sizes=("q_width", "kv_width", "kv_width")),),
        ),
        KeyRule(f"{_E}.attn.wo.weight", f"{_N}.attn.o_proj.weight"),
        KeyRule(
            f"{_E}.mlp.w12.weight",
            (f"{_N}.ffn.gate_proj.weight", f"{_N}.ffn.up_proj.weight"),
            ops=(Chunk(dim=0),),
        ),
        KeyRule(f"{_E}.mlp.w3.weight", f"{_N}.ffn.down_proj.weight"),
        KeyRule(f"{_E}.norm1.weight", f"{_N}.attn_norm.weight"),
        KeyRule(f"{_E}.norm2.weight", f"{_N}.ffn_norm.weight"),
        KeyRule("norm_f.weight", "final_norm.weight"),
        KeyRule("head.weight", "lm_head.weight"),
    ],
    tied={"lm_head.weight": "embed.weight"},
)
"""External (fused trainer layout) <-> lmhub keys of a parallel-LM model."""
