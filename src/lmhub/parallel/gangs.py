"""Gangs: the process groups a model is spread over (root, data parallel, tensor parallel).

For now lmhub runs in one process and :func:`fake_gangs` gives a gang of size one on a device.
The type is real API: sharding over ``torch.distributed`` plugs in here without changing callers.
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


@dataclass(frozen=True)
class Gangs:
    """The gangs a model is built and loaded over."""

    root: Gang
    """All processes."""

    dp: Gang
    """The data-parallel gang."""

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
