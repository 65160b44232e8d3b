"""Reading only this rank's slices of a checkpoint into a tensor-parallel model.

The model is split on meta first (its parameters become DTensors that know their placements);
each checkpoint tensor, still memory-mapped, is then cut to this rank's slice before anything is
copied, so a rank reads about ``1 / tp_size`` of each split weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn
from torch.distributed.tensor import DTensor, Shard


def local_slice(tensor: torch.Tensor, like: DTensor) -> torch.Tensor:
    """This rank's part of the full ``tensor`` under ``like``'s mesh and placements.

    Splits follow ``torch.chunk`` along each sharded dimension, as DTensor does. A slice that is
    not contiguous (a split along columns) is copied, so only it stays in memory.
    """
    mesh = like.device_mesh
    coordinate = mesh.get_coordinate()
    assert coordinate is not None, "this rank is not part of the tensor's mesh"
    local = tensor
    for mesh_dim, placement in enumerate(like.placements):
        if isinstance(placement, Shard):
            chunks = local.chunk(mesh.size(mesh_dim), dim=placement.dim)
            index = coordinate[mesh_dim]
            local = chunks[index] if index < len(chunks) else local.narrow(placement.dim, 0, 0)
    return local if local.is_contiguous() else local.contiguous()


def shard_items(
    model: nn.Module, items: Iterable[tuple[str | None, torch.Tensor, str]]
) -> Iterator[tuple[str | None, torch.Tensor, str]]:
    """Turn ``(native_key, full_tensor, file_key)`` items into DTensors of this rank's slice
    wherever ``model``'s tensor of that key is a DTensor (others pass through unchanged)."""
    layouts = {
        name: t for name, t in model.state_dict(keep_vars=True).items() if isinstance(t, DTensor)
    }
    for key, tensor, file_key in items:
        like = layouts.get(key) if key is not None else None
        if like is None or tuple(tensor.shape) != tuple(like.shape):
            yield key, tensor, file_key  # not split, or mis-shaped: assignment reports it
            continue
        local = local_slice(tensor, like)
        yield (
            key,
            DTensor.from_local(
                local,
                like.device_mesh,
                like.placements,
                run_check=False,
                shape=tensor.shape,
                stride=torch.empty(tensor.shape, device="meta").stride(),
            ),
            file_key,
        )
