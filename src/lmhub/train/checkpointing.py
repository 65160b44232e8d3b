"""Activation (gradient) checkpointing per layer, with ``torch.utils.checkpoint``.

Each layer's forward runs under ``checkpoint(..., use_reentrant=False)``: its activations are
dropped after the forward and recomputed during the backward, trading compute for memory. The
result (loss and gradients) is the same as without it; dropout draws the same random numbers
(the RNG state is saved and replayed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_FLAG = "_lmhub_checkpointed"


def find_layers(model: nn.Module) -> list[nn.Module]:
    """Return the model's repeated blocks: ``model.layers``; for an encoder-decoder the
    ``layers`` of ``model.encoder`` and ``model.decoder``; else its largest ``nn.ModuleList``.

    Example:
        >>> len(find_layers(llama_model)) == llama_model.config.num_layers
        True
    """
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList) and len(layers) > 0:
        return list(layers)
    stacks = [
        getattr(getattr(model, name, None), "layers", None) for name in ("encoder", "decoder")
    ]
    if all(isinstance(s, nn.ModuleList) and len(s) > 0 for s in stacks):
        return [layer for s in stacks for layer in s]  # type: ignore[union-attr]
    best: nn.ModuleList | None = None
    best_size = 0
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            size = sum(p.numel() for p in module.parameters())
            if size > best_size:
                best, best_size = module, size
    if best is None:
        raise ValueError(
            f"{type(model).__name__} has no nn.ModuleList of layers to checkpoint. Pass the "
            "blocks explicitly: enable_gradient_checkpointing(model, layers=[...])."
        )
    return list(best)


def _checkpointed(forward: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        # Only while building a graph; never with a KV cache, whose update must not run twice.
        if torch.is_grad_enabled() and kwargs.get("cache") is None:
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    return run


def enable_gradient_checkpointing(
    model: nn.Module, *, layers: Iterable[nn.Module] | None = None
) -> int:
    """Recompute each layer's activations in the backward pass; return how many layers.

    ``layers`` defaults to :func:`find_layers`. State-dict keys do not change (the layers'
    ``forward`` is wrapped in place), and calling this twice is harmless.

    Example:
        >>> enable_gradient_checkpointing(model)
        4
        >>> loss = model(ids).logsumexp(-1).mean(); loss.backward()  # same grads, less memory
    """
    blocks = list(layers) if layers is not None else find_layers(model)
    wrap_layer_forwards(blocks, _FLAG, lambda forward, index, block: _checkpointed(forward))
    return len(blocks)


def wrap_layer_forwards(
    blocks: Iterable[nn.Module],
    flag: str,
    wrap: Callable[[Callable[..., Any], int, nn.Module], Callable[..., Any]],
) -> None:
    """Replace each block's ``forward`` by ``wrap(forward, index, block)``, once: a block marked
    with the attribute ``flag`` is left as it is. State-dict keys do not change."""
    for index, block in enumerate(blocks):
        if getattr(block, flag, False):
            continue
        # An instance attribute shadows the class's forward; nn.Module.__call__ calls it.
        block.forward = wrap(block.forward, index, block)
        setattr(block, flag, True)


def disable_gradient_checkpointing(model: nn.Module) -> None:
    """Undo :func:`enable_gradient_checkpointing` on every layer of ``model``."""
    for module in model.modules():
        if getattr(module, _FLAG, False):
            del module.forward
            delattr(module, _FLAG)
