"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP): each rank writes its own
shards, and a checkpoint loads at another world size (DCP reshards on load).

Saves are atomic: the ranks write into a temporary sibling directory, and after a barrier
rank 0 renames it into place, so a killed save leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.optim import Optimizer

from lmhub.errors import ModelCheckpointError
from lmhub.parallel.setup import barrier


def save_sharded(
    path: str | os.PathLike[str], model: nn.Module, optimizer: Optimizer | None = None
) -> Path:
    """Save ``model`` (and ``optimizer``) to the DCP directory ``path``; call it on every rank.

    Works on plain, FSDP2 and tensor-parallel models, with or without a process group.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    if rank0 and partial.exists():
        shutil.rmtree(partial)  # left by a killed save
    barrier()
    model_state, optim_state = get_state_dict(model, optimizer if optimizer is not None else [])
    state = {"model": model_state, **({"optim": optim_state} if optimizer is not None else {})}
    dcp.save(state, checkpoint_id=partial)
    barrier()
    if rank0:
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
    barrier()
    return target


def load_sharded(
    path: str | os.PathLike[str], model: nn.Module, optimizer: Optimizer | None = None
) -> None:
    """Load a :func:`save_sharded` checkpoint into ``model`` (and ``optimizer``) in place, at
    any world size and sharding; call it on every rank."""
    source = Path(path)
    if not (source / ".metadata").is_file():
        raise ModelCheckpointError(
            f"{source} is not a distributed checkpoint (it has no .metadata file). Pass a "
            "directory written by lmhub.parallel.dcp.save_sharded.",
            path=source,
        )
    model_state, optim_state = get_state_dict(model, optimizer if optimizer is not None else [])
    state = {"model": model_state, **({"optim": optim_state} if optimizer is not None else {})}
    dcp.load(state, checkpoint_id=source)
    set_state_dict(
        model,
        optimizer if optimizer is not None else [],
        model_state_dict=state["model"],
        optim_state_dict=state.get("optim", {}),
    )
