"""Setting up gangs under torchrun: the process group, one DeviceMesh with named dimensions.

The mesh has three named dimensions, ``("dp_replicate", "dp_shard", "tp")``, outermost first,
so tensor-parallel peers are neighbouring ranks (on one node, where the links are fastest).
On CPU the mesh is always built explicitly on ``"cpu"`` over gloo: with torch 2.4/2.5 on a
machine with GPUs, ``fully_shard`` over a gloo group otherwise moved tensors to CUDA and crashed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from lmhub.errors import ParallelLayoutError
from lmhub.parallel.gangs import Gang, Gangs

MESH_DIMS: tuple[str, str, str] = ("dp_replicate", "dp_shard", "tp")
"""The names of the mesh dimensions, outermost first."""


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How ``world_size`` processes split into replicas, shards and tensor-parallel peers."""

    dp_replicate: int
    """Data-parallel replicas (HSDP's outer dimension; 1 = plain FSDP)."""

    dp_shard: int
    """Data-parallel shards each replica's parameters are split over (FSDP2)."""

    tp: int
    """Tensor-parallel peers each layer's weights are split over."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """The mesh shape, in :data:`MESH_DIMS` order."""
        return (self.dp_replicate, self.dp_shard, self.tp)


def plan_layout(
    world_size: int, *, tp_size: int = 1, dp_shard: int = -1, dp_replicate: int = 1
) -> Layout:
    """Return the layout of ``world_size`` processes; ``dp_shard=-1`` takes what is left.

    Raises:
        ParallelLayoutError: a size is below 1, or the sizes do not multiply to the world size.

    Example:
        >>> plan_layout(8, tp_size=2).dp_shard
        4
    """
    for name, value in (("tp_size", tp_size), ("dp_replicate", dp_replicate)):
        if value < 1:
            raise ParallelLayoutError(
                f"{name} is {value}, but it must be at least 1.", field=name, value=value
            )
    if dp_shard == 0 or dp_shard < -1:
        raise ParallelLayoutError(
            f"dp_shard is {dp_shard}, but it must be at least 1, or -1 for what the world size "
            "leaves.",
            field="dp_shard",
            value=dp_shard,
        )
    per_shard = tp_size * dp_replicate
    if dp_shard == -1:
        if world_size % per_shard != 0:
            raise ParallelLayoutError(
                f"The world size {world_size} must be a multiple of tp_size x dp_replicate "
                f"({tp_size} x {dp_replicate} = {per_shard}). Launch a multiple of {per_shard} "
                "processes or change tp_size/dp_replicate.",
                field="world_size",
                value=world_size,
                divisor=per_shard,
            )
        dp_shard = world_size // per_shard
    if dp_replicate * dp_shard * tp_size != world_size:
        raise ParallelLayoutError(
            f"dp_replicate x dp_shard x tp_size = {dp_replicate} x {dp_shard} x {tp_size} = "
            f"{dp_replicate * dp_shard * tp_size}, but the world size is {world_size}: the three "
            "must multiply to the number of processes. Pass dp_shard=-1 to take what is left.",
            field="world_size",
            value=world_size,
            divisor=dp_replicate * dp_shard * tp_size,
        )
    return Layout(dp_replicate=dp_replicate, dp_shard=dp_shard, tp=tp_size)


def _env_int(name: str, default: int | None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ParallelLayoutError(
                f"The environment variable {name} is not set. Launch with torchrun (or srun with "
                "RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set).",
                field=name,
            )
        return default
    return int(value)


def _default_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup_gangs(
    *,
    tp_size: int = 1,
    dp_shard: int = -1,
    dp_replicate: int = 1,
    device: torch.device | str | None = None,
) -> Gangs:
    """Initialise ``torch.distributed`` from the torchrun environment and return the gangs.

    The process group uses NCCL on CUDA and gloo on CPU; ``device=None`` picks the local GPU
    (``LOCAL_RANK``) when there is one, else the CPU. Without torchrun's variables (``WORLD_SIZE``
    unset) it sets up a world of one process. Calling it again reuses the process group.

    Raises:
        ParallelLayoutError: the sizes do not fit the world size (see :func:`plan_layout`).

    Example:
        >>> gangs = setup_gangs(tp_size=2)    # under `torchrun --nproc-per-node 4`
        >>> gangs.dp.size, gangs.tp.size
        (2, 2)
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0 if world_size == 1 else None)
    local_rank = _env_int("LOCAL_RANK", rank)
    layout = plan_layout(world_size, tp_size=tp_size, dp_shard=dp_shard, dp_replicate=dp_replicate)
    target = torch.device(device) if device is not None else _default_device(local_rank)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        if world_size == 1 and "MASTER_ADDR" not in os.environ:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        else:
            dist.init_process_group(backend, rank=rank, world_size=world_size)
    mesh = init_device_mesh(target.type, layout.shape, mesh_dim_names=MESH_DIMS)
    return gangs_from_mesh(mesh, target)


def barrier() -> None:
    """Wait for every process of the default group (nothing to wait for without one)."""
    if dist.is_initialized():
        dist.barrier()


def _gang(mesh: DeviceMesh, device: torch.device, group: object) -> Gang:
    return Gang(
        rank=dist.get_rank(group),  # type: ignore[arg-type]
        size=dist.get_world_size(group),  # type: ignore[arg-type]
        device=device,
        process_group=group,
        mesh=mesh,
    )


def gangs_from_mesh(mesh: DeviceMesh, device: torch.device) -> Gangs:
    """Wrap a mesh with :data:`MESH_DIMS` as gangs (root: all; dp: replicate x shard; tp)."""
    replicate = mesh["dp_replicate"].size()
    dp_mesh = mesh["dp_replicate", "dp_shard"] if replicate > 1 else mesh["dp_shard"]
    # A 2-D data-parallel mesh (HSDP) still needs one group for all-reduces over all its ranks.
    dp_group = dp_mesh._flatten("dp").get_group() if dp_mesh.ndim > 1 else dp_mesh.get_group()
    tp_mesh = mesh["tp"]
    return Gangs(
        root=_gang(mesh, device, dist.group.WORLD),
        dp=_gang(dp_mesh, device, dp_group),
        tp=_gang(tp_mesh, device, tp_mesh.get_group()),
    )
