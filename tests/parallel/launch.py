"""Starting a small gloo world inside a test: ``launch(fn, *args, world_size=2)`` runs
``fn(*args)`` in ``world_size`` fresh processes with torchrun's environment variables set.

``torch.multiprocessing.spawn`` re-raises the first worker's exception here and terminates the
other workers, so a failing rank cannot leave its peer waiting in a collective.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, fn: Callable[..., None], world_size: int, port: int, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    try:
        fn(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., None], *args: Any, world_size: int = 2) -> None:
    """Run ``fn(*args)`` on ``world_size`` CPU processes (``fn`` must be importable)."""
    mp.spawn(_entry, args=(fn, world_size, free_port(), args), nprocs=world_size, join=True)
