"""The MDLM type's settings (the train config's ``lm_options``)."""

from __future__ import annotations

from dataclasses import dataclass

from lmhub.errors import ConfigError

__all__ = ["MDLMOptions"]


@dataclass(kw_only=True)
class MDLMOptions:
    """How MDLM noises, whether it conditions on time, and how its predictor samples."""

    time_conditioning: bool = False
    """Condition the layers on the noise level with adaLN-zero (absorbing-state diffusion also
    works without: the number of masks tells the noise level)."""
    cond_dim: int = 128
    """Width of the adaLN-zero conditioning vector."""
    eps: float = 1e-3
    """The log-linear schedule's ``eps`` (and the smallest diffusion time drawn)."""
    predict_steps: int = 16
    """Reverse-process steps from t = 1 to 0 (``max_steps``)."""
    target_length: int | None = None
    """Seq2seq: pad every target with PAD to this length (the padding is diffused) and give the
    predictor this many positions; ``None``: targets as they are, and ``max_new_tokens``
    positions to generate."""
    temperature: float = 0.0
    """0 takes each unmasked position's most likely token; above 0 samples it."""
    top_k: int | None = None
    """Sample among the k likeliest tokens only."""
    top_p: float | None = None
    """Nucleus threshold (applied after top-k: both may be given)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` naming the first bad option."""
        checks = {
            "cond_dim": self.cond_dim >= 1,
            "eps": 0.0 < self.eps < 1.0,
            "predict_steps": self.predict_steps >= 1,
            "target_length": self.target_length is None or self.target_length >= 1,
            "temperature": self.temperature >= 0.0,
            "top_k": self.top_k is None or self.top_k >= 1,
            "top_p": self.top_p is None or 0.0 < self.top_p <= 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"The MDLM option lm_options.{name} is {getattr(self, name)!r}, which is out "
                    "of range (see MDLMOptions for the allowed values). Change it.",
                    field=f"lm_options.{name}",
                    value=getattr(self, name),
                )
