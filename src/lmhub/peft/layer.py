"""``LoraLinear``: a frozen ``nn.Linear`` plus a trainable low-rank update ``scaling * B A``.

Submodule names follow PEFT (``base_layer``, ``lora_A``, ``lora_B``, ``lora_dropout``,
``lora_magnitude_vector``), and the computation is PEFT's, in the same order, so logits agree
with PEFT on the transformers model to float rounding:

* LoRA: ``base(x) + lora_B(lora_A(dropout(x))) * scaling``.
* DoRA (weight-decomposed): the adapted weight ``W + scaling * B A`` is rescaled row by row to
  the trained magnitude ``m``: ``W' = (m / ||W + scaling * B A||) * (W + scaling * B A)``. The
  row norms are treated as constants in the backward pass (the DoRA paper's section 4.3).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoraLinear(nn.Module):
    """A linear layer adapted with LoRA; swapped in for ``base`` by :func:`apply_lora`.

    ``B`` starts at zero, so until it trains the output equals ``base``'s bit for bit.

    Example:
        >>> lin = LoraLinear(nn.Linear(16, 32), rank=4, alpha=8.0)
        >>> x = torch.randn(2, 16)
        >>> torch.equal(lin(x), lin.base_layer(x))
        True
    """

    def __init__(
        self,
        base: nn.Linear,
        *,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        use_rslora: bool = False,
        use_dora: bool = False,
    ) -> None:
        super().__init__()
        self.base_layer = base
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.rank = rank
        self.alpha = alpha
        self.use_rslora = use_rslora
        self.scaling = alpha / (math.sqrt(rank) if use_rslora else rank)
        """The factor the update ``B A x`` is multiplied by."""
        # The adapter lives where the base weight lives, in its dtype (no fp32 upcast).
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Linear(self.in_features, rank, bias=False, **like)
        self.lora_B = nn.Linear(rank, self.out_features, bias=False, **like)
        self.lora_dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # DoRA's per-output-row magnitude ``m`` (``None`` for plain LoRA).
        self.lora_magnitude_vector: nn.Parameter | None
        magnitude = nn.Parameter(torch.empty(self.out_features, **like)) if use_dora else None
        self.register_parameter("lora_magnitude_vector", magnitude)
        self.merged = False
        """Whether the update is folded into ``base_layer.weight`` (forward then skips it)."""
        self._merge_factor: torch.Tensor | None = None  # DoRA's row scale at merge, to unmerge
        self.reset_lora_parameters()

    @torch.no_grad()
    def reset_lora_parameters(self) -> None:
        """A as PEFT (and ``nn.Linear``) initialise it, kaiming-uniform with a=sqrt(5); B zero."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        if self.lora_magnitude_vector is not None:
            # m = the row norms of the (so far unchanged) weight: DoRA starts as the identity.
            self.lora_magnitude_vector.copy_(self._row_norm())

    @property
    def dropout(self) -> float:
        """The adapter's input dropout probability."""
        return self.lora_dropout.p if isinstance(self.lora_dropout, nn.Dropout) else 0.0

    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B @ A``, shaped like the base weight ``[out, in]``."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @property
    def use_dora(self) -> bool:
        """Whether this is a DoRA layer (it has a magnitude vector)."""
        return self.lora_magnitude_vector is not None

    def _row_norm(self) -> torch.Tensor:
        """DoRA's ``||W + scaling * B A||`` per output row, detached (a constant for backward)."""
        w = self.base_layer.weight
        lora = (self.lora_B.weight @ self.lora_A.weight).detach()
        return torch.linalg.norm(w + self.scaling * lora, dim=1).to(w.dtype).detach()

    def _dora_scale(self) -> torch.Tensor:
        """DoRA's per-row factor ``m / ||W + scaling * B A||``."""
        assert self.lora_magnitude_vector is not None
        return self.lora_magnitude_vector / self._row_norm()

    def _adapted_weight(self) -> torch.Tensor:
        w = self.base_layer.weight
        adapted = w + self.delta_weight().to(w.dtype)
        return self._dora_scale()[:, None] * adapted if self.use_dora else adapted

    # `weight` and `bias` make the layer read like the linear it applies. Code that fuses
    # linears by reading their weights (lmhub.nn.decode_weights, used by generation) so picks
    # up the adapter instead of silently running the base model.
    @property
    def weight(self) -> torch.Tensor:
        """The weight this layer applies: the base weight adapted, unless already merged."""
        if self.merged:
            return self.base_layer.weight
        if torch.is_inference_mode_enabled():
            # An ordinary tensor even under inference mode: decode_weights reads its version.
            with torch.inference_mode(False), torch.no_grad():
                return self._adapted_weight()
        return self._adapted_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        """The base layer's bias (LoRA leaves biases alone)."""
        return self.base_layer.bias

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into the base weight in place; forward then skips the adapter."""
        if self.merged:
            return
        w = self.base_layer.weight
        if self.use_dora:
            self._merge_factor = self._dora_scale()
            w.copy_(self._merge_factor[:, None] * (w + self.delta_weight().to(w.dtype)))
        else:
            w.add_(self.delta_weight().to(w.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the folded adapter out again (exact up to float rounding)."""
        if not self.merged:
            return
        w = self.base_layer.weight
        if self._merge_factor is not None:
            w.copy_(w / self._merge_factor[:, None] - self.delta_weight().to(w.dtype))
            self._merge_factor = None
        else:
            w.sub_(self.delta_weight().to(w.dtype))
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self.merged:
            return out
        if not self.use_dora:
            return out + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling
        # DoRA, as PEFT computes it: the base output rescaled, plus the rescaled update.
        if isinstance(self.lora_dropout, nn.Identity) or not self.training:
            bias = self.base_layer.bias
            base = out - bias if bias is not None else out
        else:
            x = self.lora_dropout(x)
            base = nn.functional.linear(x, self.base_layer.weight)
        scale = self._dora_scale().view(1, -1)
        lora = self.lora_B(self.lora_A(x))
        return out + ((scale - 1) * base + scale * lora * self.scaling)

    def extra_repr(self) -> str:
        return (
            f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}, "
            f"use_rslora={self.use_rslora}, use_dora={self.use_dora}, merged={self.merged}"
        )
