"""The seq2seq collators: training (source + labels) and prediction (source + gold target).

Both read :class:`~lmhub.lm.protocols.Seq2SeqExample` dicts (``prompt_ids`` is the source,
``target_ids`` the target, EOS included); neither modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmhub.lm.batching import ids_of, pad_rows, require_examples
from lmhub.lm.seq2seq.types import IGNORE_INDEX, Seq2SeqBatch, Seq2SeqPredictionBatch

__all__ = ["Seq2SeqCollator", "Seq2SeqPredictionCollator"]


@dataclass(kw_only=True)
class Seq2SeqCollator:
    """Batches sources (right-padded, with their mask) and targets as labels.

    Too long sources lose their start, too long targets their end.

    Example:
        >>> collate = Seq2SeqCollator(pad_token_id=0)
        >>> batch = collate([{"prompt_ids": [5, 6], "target_ids": [7, 2]},
        ...                  {"prompt_ids": [5], "target_ids": [2]}])
        >>> batch["input_ids"], batch["labels"]
        (tensor([[5, 6],
                [5, 0]]), tensor([[   7,    2],
                [   2, -100]]))
    """

    pad_token_id: int
    """Id that fills the source padding."""
    max_length: int | None = None
    """Most tokens of a source, and of a target (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> Seq2SeqBatch:
        examples = require_examples(examples)
        sources, targets = _sources(examples, self.max_length), []
        for example in examples:
            target = ids_of(example, "target_ids")
            targets.append(target[: self.max_length] if self.max_length else target)
        input_ids, attention_mask = pad_rows(sources, self.pad_token_id, left=False)
        labels, _ = pad_rows(targets, IGNORE_INDEX, left=False)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass(kw_only=True)
class Seq2SeqPredictionCollator:
    """Batches sources for generation and keeps the gold targets apart.

    Example:
        >>> collate = Seq2SeqPredictionCollator(pad_token_id=0)
        >>> collate([{"prompt_ids": [5, 6], "target_ids": [7, 2]}])["target_ids"]
        tensor([[7, 2]])
    """

    pad_token_id: int
    """Id that fills the source padding."""
    max_length: int | None = None
    """Keep only the last this many source tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> Seq2SeqPredictionBatch:
        examples = require_examples(examples)
        input_ids, attention_mask = pad_rows(
            _sources(examples, self.max_length), self.pad_token_id, left=False
        )
        target_ids, _ = pad_rows(
            [ids_of(e, "target_ids") for e in examples], IGNORE_INDEX, left=False
        )
        return {"input_ids": input_ids, "attention_mask": attention_mask, "target_ids": target_ids}


def _sources(examples: list[dict[str, Any]], max_length: int | None) -> list[Any]:
    sources = [ids_of(e, "prompt_ids") for e in examples]
    return [s[-max_length:] if max_length else s for s in sources]
