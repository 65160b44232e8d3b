"""The MLM type's settings (the train config's ``lm_options``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lmhub.errors import ConfigError

__all__ = ["MLMOptions"]


@dataclass(kw_only=True)
class MLMOptions:
    """How the MLM collators corrupt tokens and how its predictor unmasks."""

    mask_prob: float = 0.15
    """Pre-training: the fraction of tokens selected for prediction."""
    seq2seq_masking: Literal["uniform", "fixed"] = "uniform"
    """Seq2seq training: ``uniform`` draws each row's fraction of target tokens to select from
    U(0, 1] (so the model learns to fill targets from fully masked to nearly complete, as
    iterative unmasking needs); ``fixed`` selects ``mask_prob`` of them."""
    mask_token_ratio: float = 0.8
    """Of the selected tokens, the fraction replaced by [MASK]."""
    random_token_ratio: float = 0.1
    """Of the selected tokens, the fraction replaced by a random token (the rest are kept)."""
    predict_steps: int = 8
    """The predictor's most unmasking steps (``max_steps``): each step fills the most
    confident of the remaining slots, an equal share per step."""
    target_length: int | None = None
    """Seq2seq: pad every target with PAD up to this length in training, and give the
    predictor this many slots (cut at the first EOS); ``None``: the predictor gets the gold
    target's length and ``generate`` gets ``max_new_tokens`` slots."""
    temperature: float = 0.0
    """0 picks each slot's most likely token; above 0 samples it (after top-k and top-p)."""
    top_k: int | None = None
    """Sample among the k likeliest tokens only."""
    top_p: float | None = None
    """Nucleus sampling threshold (applied after top-k: both may be given)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` naming the first bad option."""
        checks = {
            "mask_prob": 0.0 < self.mask_prob <= 1.0,
            "mask_token_ratio": 0.0 <= self.mask_token_ratio <= 1.0,
            "random_token_ratio": 0.0 <= self.random_token_ratio <= 1.0 - self.mask_token_ratio,
            "predict_steps": self.predict_steps >= 1,
            "target_length": self.target_length is None or self.target_length >= 1,
            "temperature": self.temperature >= 0.0,
            "top_k": self.top_k is None or self.top_k >= 1,
            "top_p": self.top_p is None or 0.0 < self.top_p <= 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"The MLM option lm_options.{name} is {getattr(self, name)!r}, which is out "
                    "of range (see MLMOptions for the allowed values). Change it.",
                    field=f"lm_options.{name}",
                    value=getattr(self, name),
                )
