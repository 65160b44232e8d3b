"""Sharding parameters over the data-parallel gang with FSDP2 (``fully_shard``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard


def apply_fsdp(
    model: nn.Module, mesh: DeviceMesh, *, mp_policy: MixedPrecisionPolicy | None = None
) -> None:
    """Shard each block of ``model.layers`` (if any) and then the rest, over ``mesh``.

    One FSDP unit per block lets the all-gather of the next block overlap the current one's
    compute; the root unit holds the embeddings, final norm and head (tied weights stay in one
    unit). A 2-D mesh gives HSDP (replicate over the first dimension, shard over the second).
    """
    policy = mp_policy if mp_policy is not None else MixedPrecisionPolicy()
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList):
        for layer in layers:
            fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    model.register_forward_hook(_reshard_after_inference)


def _reshard_after_inference(module: nn.Module, args: Any, output: Any) -> None:
    # FSDP2 keeps the root's parameters gathered after its forward, expecting a backward to
    # reshard them. After a forward without gradients none comes, and the gathered copies went
    # stale once the optimizer stepped: the next training step used old root weights (measured:
    # losses 4e-3 off one process by step 3). Reshard here instead.
    if not torch.is_grad_enabled() and isinstance(module, FSDPModule):
        module.reshard()
