"""Which tensors a model saves, and which of its names are aliases of another (tied weights).

This is the one place that detects tied weights: saving stores each tensor once and records the
aliases, loading re-ties them, and the transformers faces tell transformers about them.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["model_tensors", "tied_names"]


def model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return ``(tensors, tied)``: each parameter and persistent buffer under its first name, and
    ``{alias: first name}`` for every other name under which a tensor appears again.

    Example:
        >>> tensors, tied = model_tensors(tied_llama)
        >>> tied
        {'lm_head.weight': 'embed.weight'}
    """
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    first_name: dict[int, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        source = first_name.setdefault(id(tensor), name)
        if source == name:
            tensors[name] = tensor.detach()
        else:
            tied[name] = source
    return tensors, tied


def tied_names(model: nn.Module) -> dict[str, str]:
    """Return ``{alias: first name}`` for every parameter or persistent buffer reachable under
    more than one name.

    Example:
        >>> tied_names(tied_llama)
        {'lm_head.weight': 'embed.weight'}
    """
    return model_tensors(model)[1]
