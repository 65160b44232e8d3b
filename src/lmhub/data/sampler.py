"""A shuffling sampler whose position can be saved with a checkpoint and restored exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from lmhub.errors import DataError

__all__ = ["ResumableSampler"]


class ResumableSampler(torch.utils.data.Sampler[int]):
    """Yields example indices epoch after epoch, each epoch in an order fixed by (seed, epoch).

    Each ``iter()`` runs from the current position to the end of the epoch, then moves to the
    next epoch. :meth:`state_dict` is the position ``(epoch, index)``: the indices already
    yielded. Restored with :meth:`load_state_dict` into a sampler over the same data, it goes on
    with exactly the indices the saved one would have yielded next.

    With a ``DataLoader`` using worker processes, the sampler runs ahead of the batches the
    training loop has consumed; save a position computed from the consumed count instead
    (:meth:`position_after`).

    Example:
        >>> sampler = ResumableSampler(4, seed=1)
        >>> first = list(sampler)
        >>> again = ResumableSampler(4, seed=1)
        >>> again.load_state_dict({"epoch": 0, "index": 2, "seed": 1, "num_items": 4})
        >>> list(again) == first[2:]
        True
    """

    def __init__(self, num_items: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.index = 0

    def __len__(self) -> int:
        return self.num_items

    def order(self, epoch: int) -> np.ndarray:
        """The indices of ``epoch``, in the order they are yielded."""
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)
        while self.index < self.num_items:
            item = int(order[self.index])
            self.index += 1
            yield item
        self.epoch += 1
        self.index = 0

    def position_after(self, consumed: int) -> dict[str, int]:
        """The state after ``consumed`` more indices from the current position."""
        epoch, index = divmod(self.index + consumed, self.num_items)
        return {**self.state_dict(), "epoch": self.epoch + epoch, "index": index}

    def state_dict(self) -> dict[str, Any]:
        """The position, plus the seed and size to check a restore against."""
        return {
            "epoch": self.epoch,
            "index": self.index,
            "seed": self.seed,
            "num_items": self.num_items,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; the data size and seed must be the saved ones."""
        for key in ("num_items", "seed"):
            if state[key] != getattr(self, key):
                raise DataError(
                    f"The saved data position has {key}={state[key]}, but this sampler has "
                    f"{key}={getattr(self, key)}. Resume with the same data and seed, or start "
                    "a new run."
                )
        if not 0 <= state["index"] <= self.num_items:
            raise DataError(
                f"The saved data position index {state['index']} is outside 0..{self.num_items}."
            )
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
