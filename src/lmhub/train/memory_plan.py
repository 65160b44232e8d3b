"""Planning memory per rank before a run: parameters, gradients, AdamW state and activations.

The model is built on the meta device (no memory). Parameters follow the family's
tensor-parallel plan (a split module holds ``1 / tp`` of its weights) and FSDP2 (every rank
holds ``1 / dp_shard`` of what is left). Activations are the tensors autograd saves for the
backward pass, counted by running the model and the training loss's output head on meta inputs
of one rank's micro-batch (``batch_size / dp`` rows) under ``saved_tensors_hooks``; those saved
inside split blocks (attention, FFN) are divided by ``tp``. It is an estimate: kernels choose
what they save at run time, and allocators round and cache.

Example:
    >>> plan = plan_memory("llama_tiny", dp=2, tp=2, batch_size=8, seq_len=256)
    >>> plan.total_bytes > plan.param_bytes
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef

from lmhub.config import apply_overrides
from lmhub.errors import ModelNotKnownError
from lmhub.lm.cross_entropy import linear_cross_entropy
from lmhub.models.hub import get_model_hub, tp_plan_of
from lmhub.models.materialize import build_on_meta
from lmhub.models.registry import all_arch_names, find_arch
from lmhub.parallel.gangs import Gang, Gangs, fake_gangs
from lmhub.parallel.plan import TpPlan

__all__ = ["MemoryPlan", "plan_memory"]

PlanPrecision = Literal["fp32", "bf16-mixed", "bf16"]

# AdamW keeps two moments per parameter, in the parameter's dtype.
ADAM_STATES = 2


@dataclass(frozen=True, kw_only=True)
class MemoryPlan:
    """Memory of one rank of a training run (bytes)."""

    arch: str
    """The architecture preset planned."""
    dp: int
    """Data-parallel ranks the parameters are sharded over (FSDP2)."""
    tp: int
    """Tensor-parallel ranks."""
    precision: PlanPrecision
    """The training precision (as ``TrainConfig.precision``)."""
    batch_size: int
    """Rows of the whole micro-batch (each data-parallel rank runs ``batch_size / dp``)."""
    seq_len: int
    """Tokens per row."""
    num_params: int
    """Parameters of the whole model."""
    rank_params: int
    """Parameters this rank holds."""
    param_bytes: int
    """This rank's parameters."""
    grad_bytes: int
    """This rank's gradients (the parameters' dtype)."""
    optimizer_bytes: int
    """This rank's AdamW moments."""
    activation_bytes: int
    """Tensors saved for the backward pass of one micro-batch (estimate)."""
    gathered_bytes: int
    """FSDP2's transient whole copies: the largest unit's parameters, twice (one gathered,
    the next prefetched); 0 without FSDP."""

    @property
    def total_bytes(self) -> int:
        """The sum: what the rank needs at the peak of a step."""
        return (
            self.param_bytes
            + self.grad_bytes
            + self.optimizer_bytes
            + self.activation_bytes
            + self.gathered_bytes
        )


def _matches(pattern: str, name: str) -> bool:
    """Whether a plan pattern (``*`` = one name part) names module ``name``."""
    parts, names = pattern.split("."), name.split(".")
    return len(parts) == len(names) and all(fnmatchcase(n, p) for p, n in zip(parts, names))


def _split_modules(model: nn.Module, plan: TpPlan) -> set[str]:
    return {name for name, _ in model.named_modules() if any(_matches(p, name) for p in plan)}


def _rank_numel(model: nn.Module, split: set[str], tp: int, dp: int) -> tuple[int, int]:
    """(parameters this rank holds, the largest FSDP unit's parameters after TP)."""
    held, units = 0, {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            numel = param.numel()
            if module_name in split:
                numel = -(-numel // tp)
            # FSDP2 pads dim 0 to a multiple of dp, so each rank holds the ceiling.
            held += -(-numel // dp)
            parts = module_name.split(".")
            unit = ".".join(parts[:2]) if parts[0] == "layers" and len(parts) > 1 else ""
            units[unit] = units.get(unit, 0) + numel
    return held, max(units.values())


def _saved_bytes(
    model: nn.Module, batch: int, seq_len: int, split_blocks: set[str], tp: int
) -> int:
    """Bytes autograd saves for one forward of ``[batch, seq_len]`` tokens and the loss head,
    run on meta; saved inside ``split_blocks`` counts ``1 / tp``."""
    fused_attention = getattr(getattr(model, "config", None), "attn_impl", "sdpa") == "sdpa"
    params = {StorageWeakRef(p.untyped_storage()).cdata for p in model.parameters()}
    saved: dict[int, float] = {}
    depth = [0]

    def enter(*_: Any) -> None:
        depth[0] += 1

    def leave(*_: Any) -> None:
        depth[0] -= 1

    hooks = []
    for name, module in model.named_modules():
        if name in split_blocks:
            hooks.append(module.register_forward_pre_hook(enter))
            hooks.append(module.register_forward_hook(leave))

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = StorageWeakRef(t.untyped_storage()).cdata
        # On meta, SDPA runs its math fallback, which saves [.., seq, seq] score matrices; the
        # fused kernels it uses at run time (flash, memory-efficient, CPU flash) save none.
        scores = fused_attention and t.dim() >= 3 and tuple(t.shape[-2:]) == (seq_len, seq_len)
        if key not in params and key not in saved and not scores:
            share = 1 / tp if depth[0] > 0 else 1.0
            saved[key] = t.untyped_storage().nbytes() * share
        return t

    try:
        ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            hidden = model(ids, return_hidden=True)
            head = getattr(model, "lm_head", None)
            if isinstance(head, nn.Linear):
                linear_cross_entropy(hidden.flatten(0, 1), head.weight, ids.flatten())
    finally:
        for hook in hooks:
            hook.remove()
    return int(sum(saved.values()))


def plan_memory(
    arch: str,
    *,
    dp: int = 1,
    tp: int = 1,
    precision: PlanPrecision = "fp32",
    batch_size: int = 1,
    seq_len: int = 2048,
    overrides: Any = None,
) -> MemoryPlan:
    """Plan one rank's memory for training ``arch`` (a preset, with config ``overrides``) on
    ``dp`` FSDP2 shards x ``tp`` tensor-parallel ranks with AdamW.

    Raises:
        ModelNotKnownError: for an unknown preset.
        ParallelLayoutError: ``tp`` does not divide the heads or widths, or the family has no
            tensor-parallel plan.
    """
    family = find_arch(arch)
    if family is None:
        raise ModelNotKnownError(arch, all_arch_names())
    hub = get_model_hub(family)
    config = apply_overrides(hub.get_arch_config(arch), overrides)
    param_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # bf16-mixed autocasts the matmuls only: the residual stream, norms and softmax stay fp32,
    # so its saved tensors are counted in fp32 (an upper bound).
    compute = param_dtype
    model = build_on_meta(hub.family.builder, config, param_dtype)
    gang = Gang(rank=0, size=tp, device=torch.device("cpu"))
    plan = tp_plan_of(hub.family, config, Gangs(root=gang, dp=fake_gangs().dp, tp=gang)) or {}
    split = _split_modules(model, plan)
    held, largest_unit = _rank_numel(model, split, tp, dp)
    blocks = {name.rpartition(".")[0] for name in split if name.startswith("layers.")}
    pbytes = torch.empty((), dtype=param_dtype).element_size()
    cbytes = torch.empty((), dtype=compute).element_size()
    rows = -(-batch_size // dp)
    return MemoryPlan(
        arch=arch,
        dp=dp,
        tp=tp,
        precision=precision,
        batch_size=batch_size,
        seq_len=seq_len,
        num_params=sum(p.numel() for p in model.parameters()),
        rank_params=held,
        param_bytes=held * pbytes,
        grad_bytes=held * pbytes,
        optimizer_bytes=ADAM_STATES * held * pbytes,
        activation_bytes=_saved_bytes(model, rows, seq_len, blocks, tp),
        gathered_bytes=2 * largest_unit * cbytes if dp > 1 else 0,
    )
