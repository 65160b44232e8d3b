"""Language-model types: each brings collators, a loss and a predictor that fit each other.

``lmhub.lm.protocols`` holds the contracts they meet, ``lmhub.lm.metrics`` the metrics they
share, ``lmhub.lm.arlm`` the autoregressive type.
"""

from lmhub.lm.protocols import (
    IGNORE_INDEX,
    Collator,
    LossFunction,
    LossOutput,
    Predictor,
    Seq2SeqExample,
    TokensExample,
)

__all__ = [
    "IGNORE_INDEX",
    "Collator",
    "LossFunction",
    "LossOutput",
    "Predictor",
    "Seq2SeqExample",
    "TokensExample",
]
