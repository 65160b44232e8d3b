"""The log-linear noise schedule of masked diffusion (MDLM, Sahoo et al., 2024).

The total noise is ``sigma(t) = -log(1 - (1 - eps) t)`` for ``t`` in ``[0, 1]``; a token is
masked at time ``t`` with probability ``1 - exp(-sigma(t)) = (1 - eps) t``, and the continuous
NELBO weighs the cross-entropy of a masked token by ``sigma'(t) / expm1(sigma(t))``, which for
this schedule is exactly ``1 / t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LogLinearSchedule", "sample_times"]


@dataclass(frozen=True, kw_only=True)
class LogLinearSchedule:
    """``sigma(t) = -log(1 - (1 - eps) t)``.

    Example:
        >>> s = LogLinearSchedule()
        >>> s.weight(torch.tensor([0.25, 0.5]))
        tensor([4., 2.])
    """

    eps: float = 1e-3
    """Keeps ``sigma(1)`` finite: at ``t = 1`` a token stays unmasked with probability ``eps``."""

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The total noise ``sigma(t)``."""
        return -torch.log1p(-(1 - self.eps) * t)

    def dsigma(self, t: torch.Tensor) -> torch.Tensor:
        """Its rate ``sigma'(t) = (1 - eps) / (1 - (1 - eps) t)``."""
        return (1 - self.eps) / (1 - (1 - self.eps) * t)

    def mask_probability(self, t: torch.Tensor) -> torch.Tensor:
        """``1 - exp(-sigma(t))``: the chance that a token is masked at time ``t``."""
        return -torch.expm1(-self.sigma(t))

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """The NELBO weight of a masked token's cross-entropy, ``sigma'(t) / expm1(sigma(t))``."""
        return self.dsigma(t) / torch.expm1(self.sigma(t))


def sample_times(
    batch: int, *, min_t: float = 1e-3, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch`` diffusion times in ``[min_t, 1]``, low-discrepancy: one uniform offset shifted
    by ``i / batch`` per row, so every batch covers the interval evenly (lower-variance
    NELBO estimates than independent draws, as in MDLM)."""
    u = torch.rand((), generator=generator)
    t = (u + torch.arange(batch) / batch) % 1.0
    return t * (1 - min_t) + min_t
