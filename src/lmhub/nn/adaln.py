"""adaLN-zero: condition a decoder's layers on a scalar (a diffusion noise level) from outside.

As in DiT (Peebles and Xie, 2023) and MDLM (Sahoo et al., 2024), a conditioning vector ``c``
(an MLP of a sinusoidal embedding of the noise level) sets, per layer, a shift and a scale of
each sublayer's input and a gate on its output, and a final shift and scale of the last hidden
states:

    attn(norm(x))  ->  gate_a * attn(norm(x) * (1 + scale_a) + shift_a)     (same for the ffn)

:class:`AdaLNZero` attaches to a built decoder without editing its family: forward
(pre-)hooks on each layer's ``attn`` and ``ffn`` apply the modulation, so the decoder keeps
its modules, its state-dict keys and its single forward. In a pre-norm layer the sublayer
input is the normed residual, exactly DiT's ``modulate(norm(x))``. In a post-norm layer
(DeepOne's) the sublayer input is the residual stream itself, which there is the previous
layer norm's output, so the same hooks again modulate a normed tensor; only the gate then
acts inside that layer's norm.

Gates and scales are ``1 + linear(c)`` with the linear layers zero-initialised, so the wrapped
model starts as exactly the unconditioned one (a pretrained backbone keeps its function; DiT's
gate without the ``1 +`` would instead start every layer as the identity).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import ConfigError

__all__ = ["AdaLNZero", "TimestepEmbedding", "timestep_frequencies"]


def timestep_frequencies(t: torch.Tensor, dim: int, *, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features ``[batch, dim]`` of scalars ``t`` ``[batch]`` (cos then sin), the
    transformer position encoding applied to a continuous value."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.float()[:, None] * freqs[None]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        features = F.pad(features, (0, 1))
    return features


class TimestepEmbedding(nn.Module):
    """``[batch]`` scalars -> ``[batch, dim]`` vectors: sinusoidal features, then an MLP."""

    def __init__(self, dim: int, *, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.fc1 = nn.Linear(frequency_dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = timestep_frequencies(t, self.frequency_dim).to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(features)))


class AdaLNZero(nn.Module):
    """adaLN-zero: modulates a decoder's layers by a noise level ``sigma``.

    Attaches to any lmhub decoder whose ``layers`` each have an ``attn`` and an ``ffn`` taking the
    hidden states as their first argument (the pre-norm, parallel and post-norm layers of
    :mod:`lmhub.nn.transformer`). The hooks read the modulation this wrapper's last call
    computed, so call the backbone through this module once attached. The backbone is held by
    reference (its parameters are not this module's; train, move and save both). Attention is
    bidirectional unless ``causal=True``.

    Example:
        >>> model = AdaLNZero(LlamaModel(llama_archs.get("llama_tiny")), cond_dim=64)
        >>> model(torch.tensor([[1, 2, 3]]), sigma=torch.tensor([0.5])).shape
        torch.Size([1, 3, 259])
    """

    def __init__(
        self, backbone: nn.Module, *, cond_dim: int = 128, frequency_dim: int = 256
    ) -> None:
        """``cond_dim``: width of the conditioning vector; ``frequency_dim``: width of the
        sinusoidal features of ``sigma``."""
        super().__init__()
        layers = getattr(backbone, "layers", None)
        dim = getattr(getattr(backbone, "config", None), "model_dim", None)
        if (
            not isinstance(layers, nn.ModuleList)
            or not isinstance(dim, int)
            or not all(
                isinstance(getattr(layer, "attn", None), nn.Module)
                and isinstance(getattr(layer, "ffn", None), nn.Module)
                for layer in layers
            )
        ):
            raise ConfigError(
                f"adaLN-zero cannot condition a {type(backbone).__name__}: it needs `layers` whose "
                "every layer has `attn` and `ffn` submodules and a config with `model_dim`. "
                "Use a decoder family built from lmhub.nn.transformer layers.",
                field="time_conditioning",
            )
        # By reference, not as a submodule: this module's state dict is the conditioning alone,
        # saved beside the family's own checkpoint of the backbone.
        object.__setattr__(self, "backbone", backbone)
        self.model_dim = dim
        self.time_embed = TimestepEmbedding(cond_dim, frequency_dim=frequency_dim)
        # Per layer: shift, scale, gate of the attention, then of the feed-forward.
        self.layer_modulation = nn.ModuleList(nn.Linear(cond_dim, 6 * dim) for _ in layers)
        self.final_modulation = nn.Linear(cond_dim, 2 * dim)
        self._modulation: list[tuple[torch.Tensor, ...]] | None = None
        """Each layer's six ``[batch, 1, dim]`` tensors from the last call: kept (not cleared
        after the forward) so that a checkpointed layer recomputed in backward sees them."""
        for index, layer in enumerate(layers):
            for sublayer, offset in ((layer.attn, 0), (layer.ffn, 3)):
                sublayer.register_forward_pre_hook(
                    self._input_hook(index, offset), with_kwargs=True
                )
                sublayer.register_forward_hook(self._output_hook(index, offset))
        self.reset_modulation()

    @torch.no_grad()
    def reset_modulation(self) -> None:
        """Zero the modulation layers (the wrapped model is then the unconditioned one) and
        give the timestep MLP the usual small normal init."""
        for linear in (*self.layer_modulation, self.final_modulation):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        for linear in (self.time_embed.fc1, self.time_embed.fc2):
            nn.init.normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)

    def _input_hook(self, index: int, offset: int) -> Any:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            if self._modulation is None:
                return None
            shift, scale = self._modulation[index][offset : offset + 2]
            return (args[0] * (1 + scale) + shift, *args[1:]), kwargs

        return hook

    def _output_hook(self, index: int, offset: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
            if self._modulation is None:
                return None
            return output * (1 + self._modulation[index][offset + 2])

        return hook

    backbone: nn.Module

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        sigma: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        return_hidden: bool = False,
        causal: bool = False,
    ) -> torch.Tensor:
        """Logits ``[batch, seq, vocab]`` (or the final hidden states) of ``input_ids`` under
        the noise level ``sigma`` (``[batch]``, or a scalar for every row)."""
        sigma = sigma.to(input_ids.device).expand(input_ids.shape[0])
        c = F.silu(self.time_embed(sigma))  # [batch, cond]
        self._modulation = [
            tuple(linear(c)[:, None].chunk(6, dim=-1)) for linear in self.layer_modulation
        ]
        hidden = self.backbone(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            return_hidden=True,
            causal=causal,
        )
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        hidden = hidden * (1 + scale) + shift
        return hidden if return_hidden else self.backbone.logits(hidden)
