"""Reading only this rank's slices of a checkpoint into a tensor-parallel model.

The model is split on meta first (its parameters become DTensors that know their placements).
The checkpoint's tensors arrive lazy (:mod:`lmhub.checkpoint.lazy`), already through the family's
weight map (a fused qkv is three lazy row ranges of one stored tensor), and each is cut to this
rank's slice before it is read: a rank reads about ``1 / tp_size`` of each split weight from the
file with positioned reads, straight into the local shard of its DTensor, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from torch import nn
from torch.distributed.tensor import DTensor, Shard

from lmhub.checkpoint.lazy import LazyTensor

T = TypeVar("T", torch.Tensor, LazyTensor)


def _chunk_range(size: int, parts: int, index: int) -> tuple[int, int]:
    """``(start, length)`` of chunk ``index`` of ``size`` entries split like ``torch.chunk``
    (which DTensor's ``Shard`` follows): chunks of ``ceil(size / parts)``, the last ones short
    or empty."""
    step = -(-size // parts) if size else 0
    start = min(index * step, size)
    return start, min(step, size - start)


def local_slice(tensor: T, like: DTensor) -> T:
    """This rank's part of the full ``tensor`` (real or lazy) under ``like``'s placements.

    A real slice that is not the whole tensor is copied, so it alone stays in memory (not the
    rest of the tensor it views); a lazy one is only narrowed.
    """
    mesh = like.device_mesh
    coordinate = mesh.get_coordinate()
    assert coordinate is not None, "this rank is not part of the tensor's mesh"
    local = tensor
    for mesh_dim, placement in enumerate(like.placements):
        if isinstance(placement, Shard):
            start, length = _chunk_range(
                local.shape[placement.dim], mesh.size(mesh_dim), coordinate[mesh_dim]
            )
            local = local.narrow(placement.dim, start, length)
    if isinstance(local, torch.Tensor) and local is not tensor:
        return local.clone(memory_format=torch.contiguous_format)
    return local


def shard_items(
    model: nn.Module, items: Iterable[tuple[str | None, torch.Tensor | LazyTensor, str]]
) -> Iterator[tuple[str | None, torch.Tensor, str]]:
    """Turn ``(native_key, tensor, file_key)`` items, real or lazy, into tensors to assign: a
    DTensor holding this rank's slice wherever ``model``'s tensor of that key is a DTensor, the
    whole tensor read for the model's other tensors, and a meta stand-in (nothing read) for keys
    the model does not have or tensors of the wrong shape, which the assignment reports."""
    state = model.state_dict(keep_vars=True)
    for key, tensor, file_key in items:
        like = state.get(key) if key is not None else None
        if like is None or tuple(tensor.shape) != tuple(like.shape):
            if isinstance(tensor, LazyTensor):
                tensor = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
            yield key, tensor, file_key
            continue
        if not isinstance(like, DTensor):
            yield key, tensor.read() if isinstance(tensor, LazyTensor) else tensor, file_key
            continue
        local = local_slice(tensor, like)
        yield (
            key,
            DTensor.from_local(
                local.read() if isinstance(local, LazyTensor) else local,
                like.device_mesh,
                like.placements,
                run_check=False,
                shape=torch.Size(tensor.shape),
                stride=torch.empty(tensor.shape, device="meta").stride(),
            ),
            file_key,
        )
