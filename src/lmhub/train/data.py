"""The trainer's data: tokenised once (cached), split, packed or paired, and batched by name.

Training batches come from :class:`TrainBatches`, which draws example indices from a
:class:`~lmhub.data.sampler.ResumableSampler` in the loop's own process (no workers), so the
sampler's state is exactly the data position to checkpoint. Validation data is a list of
:class:`NamedLoader`: the trainer sends ``lm`` loaders to the loss function and ``prediction``
loaders to the predictor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmhub.data.packing import PackedDataset
from lmhub.data.sampler import ResumableSampler
from lmhub.data.sources import DataKind, DataSource
from lmhub.data.split import train_valid_split
from lmhub.data.token_cache import TokenizedData, tokenize_source
from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import DataError

__all__ = ["Examples", "NamedLoader", "TrainBatches", "load_data_file", "load_examples"]

Examples = Sequence[dict[str, Any]]
"""Indexable examples: packed rows (text) or prompt/target pairs (seq2seq)."""


@dataclass(kw_only=True)
class _Subset:
    """Some examples of a tokenised source, in a given order."""

    data: TokenizedData
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.data[int(self.indices[index])]


def _examples(
    data: TokenizedData, indices: np.ndarray | None, *, seq_len: int, pad_token_id: int
) -> Examples:
    if data.kind == "text":
        return PackedDataset(
            data.tokens,
            data.offsets,
            seq_len=seq_len,
            pad_token_id=pad_token_id,
            documents=indices,
        )
    return _Subset(data=data, indices=indices if indices is not None else np.arange(len(data)))


def load_data_file(
    path: str,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    pad_token_id: int,
    doc_separator: str | None = None,
    add_bos: bool | None = None,
    add_eos: bool | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> tuple[DataKind, Examples]:
    """Return ``(kind, examples)`` of one data file or directory (text packed into rows)."""
    source = DataSource(path, doc_separator=doc_separator)
    data = tokenize_source(
        source, tokenizer, cache_dir=cache_dir, add_bos=add_bos, add_eos=add_eos, progress=progress
    )
    return data.kind, _examples(data, None, seq_len=seq_len, pad_token_id=pad_token_id)


def load_examples(
    train: str,
    valid: str | None,
    tokenizer: Tokenizer,
    *,
    seq_len: int,
    pad_token_id: int,
    valid_fraction: float = 0.0,
    seed: int = 0,
    doc_separator: str | None = None,
    add_bos: bool | None = None,
    add_eos: bool | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> tuple[DataKind, Examples, Examples | None]:
    """Return ``(kind, train examples, validation examples or None)``.

    Text is packed into rows of ``seq_len``; a held-out split (``valid_fraction`` without a
    ``valid`` path) is drawn over documents (pairs), before packing.
    """

    def tokenized(path: str) -> TokenizedData:
        source = DataSource(path, doc_separator=doc_separator)
        return tokenize_source(
            source,
            tokenizer,
            cache_dir=cache_dir,
            add_bos=add_bos,
            add_eos=add_eos,
            progress=progress,
        )

    train_data = tokenized(train)
    train_idx: np.ndarray | None = None
    valid_examples: Examples | None = None
    if valid is not None:
        valid_data = tokenized(valid)
        if valid_data.kind != train_data.kind:
            raise DataError(
                f"The training data {train} is {train_data.kind} data but the validation data "
                f"{valid} is {valid_data.kind} data. Give both the same kind.",
                path=valid,
            )
        valid_examples = _examples(valid_data, None, seq_len=seq_len, pad_token_id=pad_token_id)
    elif valid_fraction > 0:
        train_idx, valid_idx = train_valid_split(
            len(train_data), valid_fraction=valid_fraction, seed=seed
        )
        valid_examples = _examples(
            train_data, valid_idx, seq_len=seq_len, pad_token_id=pad_token_id
        )
    train_examples = _examples(train_data, train_idx, seq_len=seq_len, pad_token_id=pad_token_id)
    if len(train_examples) == 0:
        raise DataError(f"The training data {train} holds no examples. Fill it.", path=train)
    return train_data.kind, train_examples, valid_examples


class TrainBatches:
    """Endless training batches: ``batch_size`` examples at a time, shuffled epoch by epoch.

    :meth:`state_dict` is the sampler's position after the batches handed out so far.
    """

    def __init__(
        self,
        examples: Examples,
        collate: Callable[[list[dict[str, Any]]], Any],
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        self.examples = examples
        self.collate = collate
        self.batch_size = batch_size
        self.sampler = ResumableSampler(len(examples), seed=seed)
        self._order: Iterator[int] = iter(self.sampler)

    def _next_index(self) -> int:
        for _ in range(2):  # the current epoch's rest, else the next epoch
            index = next(self._order, None)
            if index is not None:
                return index
            self._order = iter(self.sampler)
        raise DataError("The training data holds no examples.")

    def next_batch(self) -> Any:
        """Collate the next ``batch_size`` examples (crossing into the next epoch as needed)."""
        return self.collate([self.examples[self._next_index()] for _ in range(self.batch_size)])

    def state_dict(self) -> dict[str, Any]:
        """The data position to checkpoint."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpointed position."""
        self.sampler.load_state_dict(state)
        self._order = iter(self.sampler)


@dataclass(kw_only=True)
class NamedLoader:
    """Validation batches under a name that routes them: ``lm`` or ``prediction``."""

    name: str
    """The loader's name: metrics are logged as ``<split>/<name>/<metric>``."""
    kind: str = ""
    """``lm`` (to the loss function) or ``prediction`` (to the predictor); empty: ``name``."""
    split: str = "valid"
    """``valid`` (every evaluation) or ``test`` (at the end, and in ``lmhub eval``)."""
    examples: Examples
    """The examples, taken in order."""
    collate: Callable[[list[dict[str, Any]]], Any]
    """Turns a list of examples into a batch."""
    batch_size: int
    """Examples per batch."""
    max_batches: int | None = None
    """Stop after this many batches (``None``: all)."""

    @property
    def route(self) -> str:
        """Where its batches go: ``lm`` or ``prediction``."""
        return self.kind or self.name

    def __iter__(self) -> Iterator[Any]:
        starts = range(0, len(self.examples), self.batch_size)
        for start in starts[: self.max_batches]:
            stop = min(start + self.batch_size, len(self.examples))
            yield self.collate([self.examples[i] for i in range(start, stop)])
