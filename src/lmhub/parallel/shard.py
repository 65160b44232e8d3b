"""Sharding a built model over gangs, and the gradient and state-dict steps a sharded run needs.

:func:`shard_model` splits an already materialised model: every rank builds the same weights
(same seed, or the same checkpoint) and keeps its own pieces, so a sharded run starts from
exactly the weights a single process would. The hub's ``create_new_model(gangs=...)`` instead
splits on meta (no rank ever holds the whole model) at the cost of a different random init.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy
from torch.distributed.tensor import DTensor, Partial

from lmhub.parallel.fsdp import apply_fsdp
from lmhub.parallel.gangs import Gangs
from lmhub.parallel.plan import TpPlan
from lmhub.parallel.tp import apply_tp

__all__ = ["full_state_dict", "grad_norm_", "is_sharded", "mp_policy", "shard_model"]


def mp_policy(mixed_precision: str) -> MixedPrecisionPolicy:
    """FSDP2's policy for ``ParallelConfig.mixed_precision`` (``off`` or ``bf16``)."""
    if mixed_precision == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_model(
    model: nn.Module, plan: TpPlan | None, gangs: Gangs, *, mixed_precision: str = "off"
) -> nn.Module:
    """Apply ``plan`` over ``gangs.tp`` (when it has more than one rank), then FSDP2 over
    ``gangs.dp`` (when it has more than one rank, or ``mixed_precision`` asks for a policy)."""
    if plan is not None and gangs.tp.size > 1:
        apply_tp(model, plan, gangs.tp.mesh)  # type: ignore[arg-type]
    if gangs.dp.size > 1 or mixed_precision != "off":
        apply_fsdp(model, gangs.dp.mesh, mp_policy=mp_policy(mixed_precision))  # type: ignore[arg-type]
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a DTensor (split by TP or FSDP2)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def grad_norm_(params: Iterable[nn.Parameter], max_norm: float) -> float:
    """Clip the global L2 norm of the gradients of ``params`` to ``max_norm``; return the norm.

    Works when the gradients are DTensors on different meshes (FSDP x TP gives 2-D weights
    beside 1-D norms), where ``torch.nn.utils.clip_grad_norm_`` cannot stack their norms: the
    squared sums are grouped by layout, each group's partial sums are reduced over the mesh
    dimensions it is sharded on (one collective per group), and replicated dimensions are not
    counted twice.
    """
    grads = [p.grad for p in params if p.grad is not None]
    groups: dict[tuple[object, tuple[object, ...]], list[torch.Tensor]] = defaultdict(list)
    plain: list[torch.Tensor] = []
    for grad in grads:
        if isinstance(grad, DTensor):
            groups[(grad.device_mesh, tuple(grad.placements))].append(grad.to_local())
        else:
            plain.append(grad)
    total = torch.zeros((), dtype=torch.float32)
    for (mesh, placements), locals_ in groups.items():
        squares = sum(torch.sum(t.float() ** 2) for t in locals_)
        assert isinstance(squares, torch.Tensor)
        # Sharded dims (FSDP's strided shards included) hold parts of the sum; replicated ones
        # hold it whole.
        partial = [p if p.is_replicate() else Partial("sum") for p in placements]  # type: ignore[attr-defined]
        reduced = DTensor.from_local(squares, mesh, partial, run_check=False)  # type: ignore[arg-type]
        total = total + reduced.full_tensor().cpu()
    for grad in plain:
        total = total + torch.sum(grad.float() ** 2).cpu()
    norm = math.sqrt(float(total))
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for grad in grads:
            grad.mul_(scale)
    return norm


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole, unsharded state dict of a sharded ``model`` on the CPU (every rank calls it;
    every rank gets it)."""
    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
