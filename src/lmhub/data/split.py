"""A deterministic, seedable train/validation split of a data source's examples."""

from __future__ import annotations

import numpy as np

from lmhub.errors import DataError

__all__ = ["train_valid_split"]


def train_valid_split(
    num_examples: int, *, valid_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (train, validation) example indices, each sorted, together all examples once.

    ``round(valid_fraction * num_examples)`` examples (at least one) are drawn for validation by
    a generator seeded with ``seed``: the same seed and size always give the same split.

    Example:
        >>> train, valid = train_valid_split(10, valid_fraction=0.2, seed=0)
        >>> len(train), len(valid)
        (8, 2)
    """
    if not 0.0 < valid_fraction < 1.0:
        raise DataError(
            f"The validation fraction is {valid_fraction}; it must be between 0 and 1 "
            "(e.g. 0.05), or give a validation file instead."
        )
    num_valid = max(1, round(valid_fraction * num_examples))
    if num_valid >= num_examples:
        raise DataError(
            f"Holding out {num_valid} of {num_examples} examples for validation leaves none to "
            "train on. Use more data, a smaller validation fraction, or a validation file."
        )
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[num_valid:]), np.sort(order[:num_valid])
