"""Optimizer-in-backward: step each parameter as soon as its gradient is ready, then free it.

Each parameter gets its own optimizer and a post-accumulate-grad hook that calls ``step()`` and
``zero_grad(set_to_none=True)``. The backward pass then never holds more than a few gradients at
once, instead of one per parameter at its end, so peak memory drops by about the size of the
gradients. The updates are the same as one optimizer over all parameters for optimizers whose
update of a parameter depends only on that parameter (SGD, Adam, AdamW, ...), but not for global
operations such as gradient-norm clipping, which would need all gradients at once. Nor does it
accumulate gradients over micro-batches: every backward pass steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


class FusedOptimizer:
    """The per-parameter optimizers and hooks installed by :func:`fuse_optimizer_with_backward`.

    ``step()`` and ``zero_grad()`` do nothing (the hooks already did both), so a training loop
    written for an ordinary optimizer runs unchanged.
    """

    def __init__(self, model: nn.Module, factory: OptimizerFactory) -> None:
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        """One optimizer per trainable parameter, by parameter name."""
        self._by_param: dict[nn.Parameter, torch.optim.Optimizer] = {}
        self._handles: list[Any] = []
        for name, param in model.named_parameters():  # shared (tied) parameters come once
            if not param.requires_grad:
                continue
            optimizer = factory([param])
            self.optimizers[name] = optimizer
            self._by_param[param] = optimizer
            self._handles.append(param.register_post_accumulate_grad_hook(self._step_one))
        if not self._handles:
            raise ValueError("The model has no trainable parameters to optimise.")

    def _step_one(self, param: torch.Tensor) -> None:
        optimizer = self._by_param[param]  # type: ignore[index]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Do nothing: every parameter was stepped during the backward pass."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Do nothing: every gradient was freed right after its step."""
        del set_to_none

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every per-parameter optimizer (for schedules)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """Return ``{parameter name: optimizer state dict}``."""
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])

    def remove(self) -> None:
        """Remove the hooks; the parameters are then untouched by backward passes."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def fuse_optimizer_with_backward(model: nn.Module, factory: OptimizerFactory) -> FusedOptimizer:
    """Install optimizer-in-backward on ``model``; ``factory(params)`` builds each optimizer.

    Example:
        >>> opt = fuse_optimizer_with_backward(model, lambda ps: torch.optim.AdamW(ps, lr=1e-3))
        >>> loss = model(ids).logsumexp(-1).mean()
        >>> loss.backward()   # parameters are updated here, gradients freed
        >>> opt.step()        # no-op, kept so loops need no special case
    """
    return FusedOptimizer(model, factory)
