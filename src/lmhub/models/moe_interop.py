"""Hugging Face interop of mixture-of-experts decoders (:class:`lmhub.nn.moe.MoEFeedForward`).

Hugging Face checkpoints store experts two ways: one ``nn.Linear`` per expert
(``experts.{e}.gate_proj.weight``; what transformers 5 still writes for Mixtral, Qwen-MoE and
DeepSeek), or fused 3-D tensors (``experts.gate_up_proj`` ``[experts, 2 * inner, dim]`` and
``experts.down_proj``; transformers 5's in-memory names). lmhub stacks gate, up and down
separately; per-expert rules come first, so they are also what export writes. Also the check
that an HF class can express a config's ``moe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lmhub.checkpoint.weight_map import Chunk, KeyRule, Stack
from lmhub.errors import ConfigError
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.moe import MoeConfig

NATIVE_EXPERT_NAMES = ("gate_proj", "up_proj", "down_proj")
"""The stacked tensors of :class:`lmhub.nn.moe.Experts`."""

EXPERT_COUNT = "moe.num_experts"
"""The config field that says how many experts a layer stacks."""


def per_expert_rules(
    external: str, native: str, names: tuple[str, str, str] = NATIVE_EXPERT_NAMES
) -> list[KeyRule]:
    """Rules stacking ``{external}.{e}.{name}.weight`` (one per expert) into
    ``{native}.gate_proj``/``up_proj``/``down_proj``; ``names`` are the external names of gate,
    up and down (Mixtral's ``w1``, ``w3``, ``w2``)."""
    return [
        KeyRule(
            f"{external}.{{e}}.{theirs}.weight", f"{native}.{ours}", ops=(Stack("e", EXPERT_COUNT),)
        )
        for theirs, ours in zip(names, NATIVE_EXPERT_NAMES, strict=True)
    ]


def fused_expert_rules(external: str, native: str) -> list[KeyRule]:
    """Rules splitting transformers 5's fused ``{external}.gate_up_proj`` ``[experts, 2 *
    inner, dim]`` (gate rows first) and renaming ``{external}.down_proj``."""
    return [
        KeyRule(
            f"{external}.gate_up_proj",
            (f"{native}.gate_proj", f"{native}.up_proj"),
            ops=(Chunk(dim=1),),
        ),
        KeyRule(f"{external}.down_proj", f"{native}.down_proj"),
    ]


# -- config.json ---------------------------------------------------------------------------------


def require_moe(config: LlamaConfig, model_type: str, **expected: Any) -> MoeConfig:
    """Return ``config.moe``, checking that the HF ``model_type`` can express it: each
    ``expected`` field must have the value the HF class hard-codes.

    Raises:
        ConfigError: naming the first ``moe.<field>`` that differs (or a missing ``moe``).
    """
    moe = config.moe
    if moe is None:
        raise ConfigError(
            f"The config has no 'moe', but transformers' '{model_type}' models are "
            "mixtures of experts. Set 'moe', or export with remote_code=True.",
            field="moe",
        )
    for name, value in expected.items():
        if getattr(moe, name) != value:
            raise ConfigError(
                f"The config sets 'moe.{name}' to {getattr(moe, name)!r}, but transformers' "
                f"'{model_type}' models always use {value!r}, so the model cannot be exported as "
                f"a native '{model_type}' directory. Set 'moe.{name}' to {value!r}, or export "
                "with remote_code=True.",
                field=f"moe.{name}",
                value=getattr(moe, name),
            )
    return moe


PLAIN_MOE: Final[Mapping[str, Any]] = {
    "scoring": "softmax",
    "routed_scaling_factor": 1.0,
    "num_groups": 1,
    "topk_groups": 1,
    "correction_bias": False,
    "router_bias": False,
    "expert_bias": False,
    "activation": "silu",
    "swiglu_limit": None,
    "num_shared_experts": 0,
    "shared_inner_dim": None,
    "shared_gate": False,
    "first_dense_layers": 0,
}
"""The routing every softmax top-k family without extras (Mixtral, Qwen3-MoE) hard-codes."""
