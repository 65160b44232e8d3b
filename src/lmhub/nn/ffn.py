"""Feed-forward blocks: gated (SwiGLU and friends) and plain two-layer MLPs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the activation function called ``name`` (one of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        from lmhub.errors import ConfigError

        raise ConfigError(
            f"The activation '{name}' is not supported. Use one of: {', '.join(ACTIVATIONS)}.",
            field="activation",
            value=name,
        ) from None


class _GatedActivation(torch.autograd.Function):
    """``act(gate) * up`` that keeps only ``gate`` and ``up`` for the backward and recomputes
    ``act(gate)`` there: one activation-sized tensor per layer less than autograd keeps (it
    would also save ``act(gate)``). The gradients are the ones autograd computes, bit for bit:
    the same kernels run on the same inputs."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        gate: torch.Tensor,
        up: torch.Tensor,
        act: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        ctx.act = act  # type: ignore[attr-defined]
        return act(gate) * up

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        gate, up = ctx.saved_tensors  # type: ignore[attr-defined]
        with torch.enable_grad():
            g = gate.detach().requires_grad_()
            activated = ctx.act(g)  # type: ignore[attr-defined]
        grad_up = grad * activated.detach() if ctx.needs_input_grad[1] else None
        grad_gate = None
        if ctx.needs_input_grad[0]:
            (grad_gate,) = torch.autograd.grad(activated, g, grad * up)
        return grad_gate, grad_up, None


def gated_activation(
    gate: torch.Tensor, up: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Return ``act(gate) * up``; when it needs gradients, through :class:`_GatedActivation`,
    which holds less memory for the backward. Under ``torch.compile`` the plain expression:
    inductor's partitioner chooses what to recompute itself, and the Function's backward (an
    ``autograd.grad`` call) would split the compiled graph."""
    compiling = torch.compiler.is_compiling()
    if not compiling and torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return _GatedActivation.apply(gate, up, act)
    return act(gate) * up


class GLUFeedForward(nn.Module):
    """Gated feed-forward ``down(act(gate(x)) * up(x))``; with ``silu`` this is SwiGLU (Llama).

    Parameter names (``gate_proj``, ``up_proj``, ``down_proj``) follow Hugging Face so that
    checkpoints load with a rename and no copies.
    """

    def __init__(
        self, model_dim: int, inner_dim: int, *, activation: str = "silu", bias: bool = False
    ) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(model_dim, inner_dim, bias=bias)
        self.up_proj = nn.Linear(model_dim, inner_dim, bias=bias)
        self.down_proj = nn.Linear(inner_dim, model_dim, bias=bias)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(gated_activation(self.gate_proj(x), self.up_proj(x), self._act))


class MLPFeedForward(nn.Module):
    """Plain two-layer feed-forward ``fc2(act(fc1(x)))`` (GPT-2, the vanilla transformer)."""

    def __init__(
        self, model_dim: int, inner_dim: int, *, activation: str = "relu", bias: bool = True
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(model_dim, inner_dim, bias=bias)
        self.fc2 = nn.Linear(inner_dim, model_dim, bias=bias)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self._act(self.fc1(x)))
