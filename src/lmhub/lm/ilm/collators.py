"""The three ILM collators: pre-training, seq2seq training, and seq2seq prediction.

Rows start with a CLS token, whose final state the stop head reads; with ``sep_token_id`` (the
run's BOS, as in XLM) the prompt is followed by that separator, whose gap takes insertions
before the first target token, so the model sees where the fixed prompt ends and the growing
target begins (without it, the prompt's last token holds that gap). The training collators
delete ``n ~ U{0..len}`` tokens of each row's deletable part (the whole text when pre-training,
the target in seq2seq) at uniformly random positions, and credit every deleted token to the gap
of the nearest kept token on its left. They draw from ``generator`` (``None``: torch's global
RNG, which the trainer seeds, saves and restores). None modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmhub.lm.batching import ids_of as _ids
from lmhub.lm.batching import pad_rows as _pad
from lmhub.lm.batching import require_examples as _nonempty
from lmhub.lm.ilm.types import IGNORE_INDEX, ILMBatch, ILMPredictionBatch

__all__ = ["ILMPretrainCollator", "ILMSeq2SeqCollator", "ILMSeq2SeqPredictionCollator", "delete"]


def delete(
    tokens: np.ndarray, *, generator: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Delete ``n ~ U{0..len(tokens)}`` tokens at random positions.

    Returns the kept tokens, the deleted tokens, and for each deleted token how many kept
    tokens precede it (0: the leading gap; ``k``: the gap right of the ``k``-th kept token).

    Example:
        >>> rng = torch.Generator().manual_seed(0)
        >>> kept, gone, gaps = delete(np.array([4, 5, 6]), generator=rng)
        >>> len(kept) + len(gone), bool((gaps <= len(kept)).all())
        (3, True)
    """
    length = len(tokens)
    n = int(torch.randint(0, length + 1, (), generator=generator))
    order = torch.randperm(length, generator=generator).numpy()
    keep = np.ones(length, dtype=bool)
    keep[order[:n]] = False
    kept_before = np.cumsum(keep) - keep  # kept tokens strictly before each position
    return tokens[keep], tokens[~keep], kept_before[~keep]


@dataclass(kw_only=True)
class _Deleting:
    pad_token_id: int
    """Id that fills the padding."""
    cls_token_id: int
    """Id of the CLS token starting every row (the stop head reads its state)."""
    sep_token_id: int | None = None
    """Id of the separator after the prompt (the BOS id): its gap is the leading gap of the
    target (``None``: no separator)."""
    generator: torch.Generator | None = None
    """The RNG of the deletions (``None``: torch's global RNG)."""

    def _batch(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> ILMBatch:
        """``parts``: per row, the prompt (kept whole) and the deletable tokens."""
        rows, insert, gap_rows, gap_pos, gap_tok, counts = [], [], [], [], [], []
        for row, (prompt, deletable) in enumerate(parts):
            kept, gone, kept_before = delete(deletable, generator=self.generator)
            prompt = _with_separator(prompt, self.sep_token_id)
            anchor = len(prompt)  # the separator's (or the prompt's last token's) position
            rows.append(np.r_[self.cls_token_id, prompt, kept].astype(np.int64))
            insert.append(np.r_[np.zeros(anchor, np.int64), np.ones(len(kept) + 1, np.int64)])
            gap_rows.append(np.full(len(gone), row))
            gap_pos.append(anchor + kept_before)
            gap_tok.append(gone)
            counts.append(len(gone))
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        width = input_ids.shape[1]
        gap_index = np.concatenate(gap_rows) * width + np.concatenate(gap_pos)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "insert_mask": _pad(insert, 0, left=False)[0],
            "gap_index": torch.from_numpy(gap_index.astype(np.int64)),
            "gap_token": torch.from_numpy(np.concatenate(gap_tok).astype(np.int64)),
            "num_deleted": torch.tensor(counts, dtype=torch.long),
        }


@dataclass(kw_only=True)
class ILMPretrainCollator(_Deleting):
    """Batches runs of token ids; any of their tokens may be deleted.

    Example:
        >>> collate = ILMPretrainCollator(pad_token_id=0, cls_token_id=9)
        >>> collate([{"input_ids": [5, 6, 7]}])["input_ids"][0, 0]
        tensor(9)
    """

    max_length: int | None = None
    """Cut longer rows to this many tokens, the CLS token and separator not counted
    (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ILMBatch:
        empty = np.zeros(0, dtype=np.int64)
        parts = []
        for example in _nonempty(examples):
            ids = _ids(example, "input_ids")
            if self.sep_token_id is not None and len(ids) and ids[0] == self.sep_token_id:
                ids = ids[1:]  # a text's own BOS is the separator, never deleted
            parts.append((empty, ids[: self.max_length]))
        return self._batch(parts)


@dataclass(kw_only=True)
class ILMSeq2SeqCollator(_Deleting):
    """Batches CLS + prompt + target rows; only target tokens are deleted.

    Example:
        >>> collate = ILMSeq2SeqCollator(pad_token_id=0, cls_token_id=9)
        >>> collate([{"prompt_ids": [5, 6], "target_ids": [7]}])["insert_mask"][0, :3]
        tensor([0, 0, 1])
    """

    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""
    max_target_length: int | None = None
    """Cut longer targets to this many tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ILMBatch:
        return self._batch(
            [
                (
                    _prompt(e, self.max_prompt_length),
                    _ids(e, "target_ids")[: self.max_target_length],
                )
                for e in _nonempty(examples)
            ]
        )


@dataclass(kw_only=True)
class ILMSeq2SeqPredictionCollator:
    """Batches CLS + prompt rows to insert into, and keeps the gold targets apart.

    Example:
        >>> collate = ILMSeq2SeqPredictionCollator(pad_token_id=0, cls_token_id=9)
        >>> collate([{"prompt_ids": [5, 6], "target_ids": [7]}])["insert_mask"]
        tensor([[0, 0, 1]])
    """

    pad_token_id: int
    """Id that fills the padding."""
    cls_token_id: int
    """Id of the CLS token starting every row."""
    sep_token_id: int | None = None
    """Id of the separator after the prompt, as in training (``None``: none)."""
    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> ILMPredictionBatch:
        examples = _nonempty(examples)
        rows, insert = [], []
        for example in examples:
            prompt = _with_separator(_prompt(example, self.max_prompt_length), self.sep_token_id)
            rows.append(np.r_[self.cls_token_id, prompt].astype(np.int64))
            insert.append(np.r_[np.zeros(len(prompt), np.int64), 1])
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        targets = [_ids(e, "target_ids") for e in examples]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "insert_mask": _pad(insert, 0, left=False)[0],
            "target_ids": _pad(targets, IGNORE_INDEX, left=False)[0],
        }


def _prompt(example: dict[str, Any], max_length: int | None) -> np.ndarray:
    prompt = _ids(example, "prompt_ids")
    return prompt[-max_length:] if max_length else prompt


def _with_separator(prompt: np.ndarray, sep_token_id: int | None) -> np.ndarray:
    return prompt if sep_token_id is None else np.r_[prompt, sep_token_id].astype(np.int64)
