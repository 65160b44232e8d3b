"""Feed-forward blocks: gated (SwiGLU and friends) and plain two-layer MLPs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.nn.decode_weights import FusedLinear

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

    _decode_weights: tuple[FusedLinear, FusedLinear] | None = None
    """Fused gate/up and down copies inside ``lmhub.nn.decode_weights.decode_weights``."""

    def build_decode_weights(self) -> tuple[FusedLinear, FusedLinear]:
        """Return decode-time copies: gate and up fused into one product, and down."""
        return FusedLinear(self.gate_proj, self.up_proj), FusedLinear(self.down_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._decode_weights is not None:
            gate_up, down = self._decode_weights
            gate, up = gate_up(x).chunk(2, dim=-1)
            return down(self._act(gate) * up)
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

    _decode_weights: tuple[FusedLinear, FusedLinear] | None = None
    """Decode-time copies of fc1 and fc2 inside ``lmhub.nn.decode_weights.decode_weights``."""

    def build_decode_weights(self) -> tuple[FusedLinear, FusedLinear]:
        """Return decode-time copies of fc1 and fc2 (in the faster kernel's layout)."""
        return FusedLinear(self.fc1), FusedLinear(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._decode_weights is not None:
            fc1, fc2 = self._decode_weights
            return fc2(self._act(fc1(x)))
        return self.fc2(self._act(self.fc1(x)))
