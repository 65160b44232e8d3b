"""Per-layer embeddings (Gemma 3n / Gemma 4's "PLE"): a second, narrow embedding per layer that
feeds each decoder layer a token-identity signal of its own.

Two halves:

- :class:`PerLayerEmbeddings` (once per model) looks every token up in one packed table
  ``[vocab, layers * dim]`` (scaled by ``sqrt(dim)``), adds a projection of the main token
  embeddings (scaled by ``1 / sqrt(model_dim)`` and RMS-normed per layer) and scales the sum by
  ``1 / sqrt(2)``: ``[batch, seq, layers, dim]``.
- :class:`PerLayerInputGate` (in each layer) gates its slice into the residual stream:
  ``h + norm(up(act(gate(h)) * per_layer_input))``.

Example:
    >>> ple = PerLayerEmbeddings(100, model_dim=64, num_layers=2, dim=8)
    >>> ids = torch.tensor([[1, 2, 3]])
    >>> ple(ids, torch.randn(1, 3, 64)).shape
    torch.Size([1, 3, 2, 8])
    >>> gate = PerLayerInputGate(64, 8)
    >>> gate(torch.randn(1, 3, 64), ple(ids, torch.randn(1, 3, 64))[:, :, 0]).shape
    torch.Size([1, 3, 64])
"""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.ffn import get_activation
from lmhub.nn.norm import RMSNorm


class PerLayerEmbeddings(nn.Module):
    """The model-level half: token ids and main embeddings -> one input per layer.

    ``embed`` is the packed table (HF ``embed_tokens_per_layer``), ``projection`` maps the main
    embeddings to every layer's slice (HF ``per_layer_model_projection``) and ``norm`` normalises
    each slice of the projection (HF ``per_layer_projection_norm``).
    """

    def __init__(
        self, vocab_size: int, *, model_dim: int, num_layers: int, dim: int, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.dim = dim
        self.model_dim = model_dim
        self.embed = nn.Embedding(vocab_size, num_layers * dim)
        self.projection = nn.Linear(model_dim, num_layers * dim, bias=False)
        self.norm = RMSNorm(dim, eps=eps)

    def forward(self, input_ids: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """Return ``[batch, seq, layers, dim]`` for ``input_ids`` ``[batch, seq]`` and their
        (scaled) main embeddings ``embeds`` ``[batch, seq, model_dim]``."""
        shape = (*input_ids.shape, self.num_layers, self.dim)
        tokens = self.embed(input_ids)
        # The scale is rounded to the weights' dtype first, as transformers does.
        tokens = tokens * torch.tensor(self.dim**0.5).to(tokens.dtype)
        projected = self.projection(embeds) * self.model_dim**-0.5
        projected = self.norm(projected.reshape(shape))
        return (projected + tokens.reshape(shape)) * 2.0**-0.5


class PerLayerInputGate(nn.Module):
    """The layer-level half: ``h + norm(projection(act(gate(h)) * per_layer_input))``.

    ``gate`` (HF ``per_layer_input_gate``) narrows the residual stream to the per-layer width,
    ``projection`` (HF ``per_layer_projection``) widens the gated product back, ``norm`` (HF
    ``post_per_layer_input_norm``) normalises it before the residual add.
    """

    def __init__(
        self,
        model_dim: int,
        dim: int,
        *,
        activation: str = "gelu_tanh",
        eps: float = 1e-6,
        unit_offset: bool = False,
    ) -> None:
        super().__init__()
        self.activation = activation
        self._act = get_activation(activation)
        self.gate = nn.Linear(model_dim, dim, bias=False)
        self.projection = nn.Linear(dim, model_dim, bias=False)
        self.norm = RMSNorm(model_dim, eps=eps, unit_offset=unit_offset)

    def forward(self, h: torch.Tensor, per_layer_input: torch.Tensor) -> torch.Tensor:
        gated = self._act(self.gate(h)) * per_layer_input
        return h + self.norm(self.projection(gated))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"
