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
    if style == "vocab_embedding":
        return RowwiseParallel(input_layouts=Replicate())
    if style == "vocab_output":
        return ColwiseParallel(output_layouts=Replicate())
    raise ValueError(f"Unknown tensor-parallel style '{style}'; use one of {TpStyle}.")


def apply_tp(model: nn.Module, plan: TpPlan, mesh: DeviceMesh) -> None:
    """Split ``model``'s modules over the 1-D ``mesh`` as ``plan`` says (works on meta too)."""
    parallelize_module(model, mesh, {name: torch_style(style) for name, style in plan.items()})
