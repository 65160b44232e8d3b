"""The ILM type's settings (the train config's ``lm_options``)."""

from __future__ import annotations

from dataclasses import dataclass

from lmhub.errors import ConfigError
from lmhub.lm.ilm.loss import NORMALIZATIONS

__all__ = ["ILMOptions"]


@dataclass(kw_only=True)
class ILMOptions:
    """The ILM stop head and how its predictor inserts."""

    stop_head: bool = True
    """Train a stop head on the CLS state (without one, generation runs to its length limit)."""
    segment_embedding: bool = True
    """Add a learned segment vector (prompt, or the open part from the separator on) to the
    token embeddings: the backbones' relative positions do not tell where the prompt ends."""
    position_embedding: bool = True
    """Add a learned vector per absolute position to the token embeddings (RoPE and ALiBi put
    no position in the residual stream; reversal needs to carry a prompt token's place)."""
    max_positions: int = 512
    """Positions of the position embedding (later positions share the last vector)."""
    stop_weight: float = 1.0
    """The factor on the stop loss."""
    loss_normalization: str = "prediction"
    """``"prediction"``: the loss is the mean over every deleted token's insertion and every
    row's stop decision; ``"row"``: each row's mean over its deleted tokens plus its stop loss,
    averaged over rows (XLM's; slower to learn). See :class:`~lmhub.lm.ilm.loss.ILMLoss`."""
    stop_threshold: float = 0.5
    """Generation stops once the stop probability passes this."""
    temperature: float = 0.0
    """0 takes the most likely (gap, token) pair; above 0 samples it."""
    top_k: int | None = None
    """Sample among the k likeliest pairs only."""
    top_p: float | None = None
    """Nucleus threshold (applied after top-k: both may be given)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` naming the first bad option."""
        checks = {
            "max_positions": self.max_positions >= 1,
            "stop_weight": self.stop_weight >= 0.0,
            "loss_normalization": self.loss_normalization in NORMALIZATIONS,
            "stop_threshold": 0.0 < self.stop_threshold < 1.0,
            "temperature": self.temperature >= 0.0,
            "top_k": self.top_k is None or self.top_k >= 1,
            "top_p": self.top_p is None or 0.0 < self.top_p <= 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"The ILM option lm_options.{name} is {getattr(self, name)!r}, which is out "
                    "of range (see ILMOptions for the allowed values). Change it.",
                    field=f"lm_options.{name}",
                    value=getattr(self, name),
                )
