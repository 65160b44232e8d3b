"""Building models without wasted memory.

A model is built on the ``meta`` device (no memory, no init), then either materialised and
initialised on the target device, or filled tensor by tensor from a checkpoint
(:mod:`lmhub.checkpoint.assign`), so that memory-mapped tensors stay memory-mapped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from lmhub.checkpoint import save_load
from lmhub.checkpoint.assign import finish_model
from lmhub.models.registry import family_of
from lmhub.utils import default_dtype, no_init_weights

ModelT = TypeVar("ModelT", bound=nn.Module)


def build_on_meta(builder: Callable[[Any], ModelT], config: Any, dtype: torch.dtype) -> ModelT:
    """Build ``builder(config)`` on the meta device with ``dtype`` as the default dtype.

    Init is skipped: it does nothing useful on meta tensors, yet torch routes it through its
    reference decompositions, whose first use imports torch._dynamo (~1.7 s).
    """
    with torch.device("meta"), default_dtype(dtype), no_init_weights():
        return builder(config)


def materialize(model: nn.Module, device: torch.device) -> None:
    """Allocate a meta-built model on ``device`` and initialise its parameters once."""
    model.to_empty(device=device)
    finish_model(model, device)
    with torch.no_grad():
        reset = getattr(model, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for module in model.modules():
                if module is not model and callable(getattr(module, "reset_parameters", None)):
                    module.reset_parameters()


def load_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module,
    *,
    device: torch.device | str | None = None,
    mmap: bool = True,
) -> nn.Module:
    """Load the weights at ``directory`` into ``model`` (of a registered family) and return it.

    The front of :func:`lmhub.checkpoint.save_load.load_checkpoint` that passes the weight map
    of ``model``'s family, so Hugging Face checkpoints of that family load too.

    Example:
        >>> model = hub.create_new_model(config, meta=True)
        >>> load_checkpoint("ckpt", model, device="cuda")
    """
    family = family_of(model)
    return save_load.load_checkpoint(
        directory,
        model,
        weight_map=(
            family.weight_map.bind(getattr(model, "config", None)) if family is not None else None
        ),
        device=device,
        mmap=mmap,
    )
