"""Gangs: the process groups a model is spread over (root, data parallel, tensor parallel).

Each :class:`Gang` wraps one dimension of a ``torch.distributed`` DeviceMesh (its rank, size,
process group and the mesh itself). :func:`lmhub.parallel.setup_gangs` builds them under
torchrun; :func:`fake_gangs` gives gangs of size one for a single process, with the same API.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Gang:
    """One process group as seen by this process."""

    rank: int
    """This process's rank within the gang."""

    size: int
    """The number of processes in the gang."""

    device: torch.device
    """The device this process computes on."""

    process_group: object | None = None
    """The ``torch.distributed`` process group, or ``None`` for a single process."""

    mesh: object | None = None
    """The ``DeviceMesh`` this gang spans (FSDP2 and DTensor take it), or ``None`` for a single
    process. The data-parallel mesh is 2-D (replicate x shard) when replicas are asked for."""

    @property
    def group(self) -> object | None:
        """The ``torch.distributed`` process group (same as ``process_group``)."""
        return self.process_group


@dataclass(frozen=True)
class Gangs:
    """The gangs a model is built and loaded over."""

    root: Gang
    """All processes."""

    dp: Gang
    """The data-parallel gang (replicas times shards)."""

    tp: Gang
    """The tensor-parallel gang."""

    @property
    def device(self) -> torch.device:
        """The device of this process."""
        return self.root.device


def fake_gangs(device: torch.device | str = "cpu") -> Gangs:
    """Return single-process gangs on ``device``.

    Example:
        >>> fake_gangs("cpu").tp.size
        1
    """
    gang = Gang(rank=0, size=1, device=torch.device(device))
    return Gangs(root=gang, dp=gang, tp=gang)
