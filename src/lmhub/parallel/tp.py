"""Applying a family's tensor-parallel plan with torch's ``parallelize_module`` (DTensor)."""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Replicate
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)

from lmhub.parallel.plan import TpPlan, TpStyle


def torch_style(style: TpStyle) -> ParallelStyle:
    """The torch ``ParallelStyle`` of a plan entry (module outputs come back as plain tensors)."""
    if style == "colwise":
        return ColwiseParallel()
    if style == "rowwise":
        return RowwiseParallel()
    # For an embedding, RowwiseParallel splits the vocabulary rows; for a linear, the input.
    if style in ("vocab_embedding", "rowwise_from_replicated"):
        return RowwiseParallel(input_layouts=Replicate())
    if style in ("vocab_output", "colwise_gather"):
        return ColwiseParallel(output_layouts=Replicate())
    raise ValueError(f"Unknown tensor-parallel style '{style}'; use one of {TpStyle}.")


def apply_tp(model: nn.Module, plan: TpPlan, mesh: DeviceMesh) -> None:
    """Split ``model``'s modules over the 1-D ``mesh`` as ``plan`` says (works on meta too)."""
    parallelize_module(model, mesh, {name: torch_style(style) for name, style in plan.items()})
