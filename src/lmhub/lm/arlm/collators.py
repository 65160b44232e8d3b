"""The three ARLM collators: pre-training, seq2seq training, and seq2seq prediction.

Each is a small dataclass called with a list of examples (:class:`~lmhub.lm.protocols.
TokensExample` or :class:`~lmhub.lm.protocols.Seq2SeqExample`); none modifies its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmhub.errors import DataError
from lmhub.lm.arlm.types import IGNORE_INDEX, ARLMBatch, ARLMPredictionBatch

__all__ = ["ARLMPretrainCollator", "ARLMSeq2SeqCollator", "ARLMSeq2SeqPredictionCollator"]


@dataclass(kw_only=True)
class ARLMPretrainCollator:
    """Batches runs of token ids (documents or packed rows) for next-token prediction.

    Rows are right-padded to the longest; labels are the ids themselves with ``IGNORE_INDEX`` on
    padding. Packed rows (with ``position_ids`` and ``document_ids``) keep both, their padding is
    where the document id is -1, and the first token of each document takes no loss, since
    predicting it would read the document before.

    Example:
        >>> collate = ARLMPretrainCollator(pad_token_id=0)
        >>> collate([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])["labels"]
        tensor([[   5,    6,    7],
                [   8, -100, -100]])
    """

    pad_token_id: int
    """Id that fills the padding."""
    max_length: int | None = None
    """Cut longer rows to this many tokens (``None``: keep every token)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ARLMBatch:
        rows = [_ids(e, "input_ids")[: self.max_length] for e in _nonempty(examples)]
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        batch: ARLMBatch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        if "document_ids" in examples[0]:
            positions = [_ids(e, "position_ids")[: self.max_length] for e in examples]
            documents = [_ids(e, "document_ids")[: self.max_length] for e in examples]
            batch["position_ids"] = _pad(positions, 0, left=False)[0]
            batch["document_ids"] = _pad(documents, -1, left=False)[0]
            # A packed row's own padding is document -1.
            batch["attention_mask"] = (batch["document_ids"] >= 0).long()
            no_loss = (batch["position_ids"] == 0) | (batch["attention_mask"] == 0)
            batch["labels"] = labels.masked_fill(no_loss, IGNORE_INDEX)
        return batch


@dataclass(kw_only=True)
class ARLMSeq2SeqCollator:
    """Batches prompt + target sequences for training with the loss on the target only.

    Each row is the prompt then the target, right-padded; labels are ``IGNORE_INDEX`` on the
    prompt and the padding. Too long rows lose the start of the prompt first, then the end of
    the target.

    Example:
        >>> collate = ARLMSeq2SeqCollator(pad_token_id=0)
        >>> collate([{"prompt_ids": [5, 6], "target_ids": [7, 2]}])["labels"]
        tensor([[-100, -100,    7,    2]])
    """

    pad_token_id: int
    """Id that fills the padding."""
    max_length: int | None = None
    """Most tokens per row, prompt and target together (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ARLMBatch:
        rows, prompt_lengths = [], []
        for example in _nonempty(examples):
            prompt, target = _ids(example, "prompt_ids"), _ids(example, "target_ids")
            if self.max_length is not None:
                target = target[: self.max_length]
                prompt = prompt[max(0, len(prompt) + len(target) - self.max_length) :]
            rows.append(np.concatenate([prompt, target]))
            prompt_lengths.append(len(prompt))
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        positions = torch.arange(input_ids.shape[1])
        on_prompt = positions[None, :] < torch.tensor(prompt_lengths)[:, None]
        labels = input_ids.masked_fill(on_prompt | (attention_mask == 0), IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass(kw_only=True)
class ARLMSeq2SeqPredictionCollator:
    """Batches prompts for generation (left-padded) and keeps the gold targets apart.

    Example:
        >>> collate = ARLMSeq2SeqPredictionCollator(pad_token_id=0)
        >>> batch = collate([{"prompt_ids": [5], "target_ids": [7, 2]},
        ...                  {"prompt_ids": [5, 6], "target_ids": [8]}])
        >>> batch["input_ids"], batch["target_ids"]
        (tensor([[0, 5],
                [5, 6]]), tensor([[   7,    2],
                [   8, -100]]))
    """

    pad_token_id: int
    """Id that fills the (left) padding of the prompts."""
    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ARLMPredictionBatch:
        examples = _nonempty(examples)
        start = -self.max_prompt_length if self.max_prompt_length else 0
        prompts = [_ids(e, "prompt_ids")[start:] for e in examples]
        input_ids, attention_mask = _pad(prompts, self.pad_token_id, left=True)
        targets = [_ids(e, "target_ids") for e in examples]
        target_ids, _ = _pad(targets, IGNORE_INDEX, left=False)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "target_ids": target_ids}


def _nonempty(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not examples:
        raise DataError("A collator was given no examples. Pass at least one example per batch.")
    return examples


def _ids(example: dict[str, Any], key: str) -> np.ndarray:
    """The example's ``key`` as a 1-D int64 array (from a list, an array or a tensor)."""
    try:
        value = example[key]
    except KeyError:
        raise DataError(
            f"An example has no {key!r} (its keys: {sorted(example)}). Give every example of "
            "this collator the same keys, as its data source writes them."
        ) from None
    if isinstance(value, torch.Tensor):
        value = value.numpy(force=True)
    return np.asarray(value, dtype=np.int64).reshape(-1)


def _pad(
    rows: Sequence[np.ndarray], value: int, *, left: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows into ``[len(rows), longest]``, padded with ``value``; also the 0/1 mask."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        out[i, cols] = row
        mask[i, cols] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)
