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
        return self.down_proj(self._act(self.gate_proj(x)) * self.up_proj(x))


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
