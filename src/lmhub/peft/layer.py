"""``LoraLinear``: a frozen ``nn.Linear`` plus a trainable low-rank update ``scaling * B A``.

Submodule names follow PEFT (``base_layer``, ``lora_A``, ``lora_B``, ``lora_dropout``), and the
computation is PEFT's ``base(x) + lora_B(lora_A(dropout(x))) * scaling`` in the same order, so
logits agree with PEFT on the transformers model to float rounding.
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
        self.merged = False
        """Whether the update is folded into ``base_layer.weight`` (forward then skips it)."""
        self.reset_lora_parameters()

    @torch.no_grad()
    def reset_lora_parameters(self) -> None:
        """A as PEFT (and ``nn.Linear``) initialise it, kaiming-uniform with a=sqrt(5); B zero."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @property
    def dropout(self) -> float:
        """The adapter's input dropout probability."""
        return self.lora_dropout.p if isinstance(self.lora_dropout, nn.Dropout) else 0.0

    def delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B @ A``, shaped like the base weight ``[out, in]``."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    # `weight` and `bias` make the layer read like the linear it applies. Code that fuses
    # linears by reading their weights (lmhub.nn.decode_weights, used by generation) so picks
    # up the adapter instead of silently running the base model.
    @property
    def weight(self) -> torch.Tensor:
        """The weight this layer applies: the base weight plus the update unless merged."""
        base = self.base_layer.weight
        if self.merged:
            return base
        if torch.is_inference_mode_enabled():
            # An ordinary tensor even under inference mode: decode_weights reads its version.
            with torch.inference_mode(False), torch.no_grad():
                return base + self.delta_weight().to(base.dtype)
        return base + self.delta_weight().to(base.dtype)

    @property
    def bias(self) -> torch.Tensor | None:
        """The base layer's bias (LoRA leaves biases alone)."""
        return self.base_layer.bias

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight in place; forward then skips the adapter."""
        if not self.merged:
            w = self.base_layer.weight
            w.add_(self.delta_weight().to(w.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the folded update again (exact up to float rounding of the add/subtract)."""
        if self.merged:
            w = self.base_layer.weight
            w.sub_(self.delta_weight().to(w.dtype))
            self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self.merged:
            return out
        return out + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def extra_repr(self) -> str:
        return (
            f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}, "
            f"use_rslora={self.use_rslora}, merged={self.merged}"
        )
