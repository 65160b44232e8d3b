"""The three MLM collators: pre-training, seq2seq training, and seq2seq prediction.

Corruption draws from torch's global generator (which checkpoints save and restore, so a resumed
run draws the same masks); no collator modifies its examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmhub.lm.batching import ids_of, pad_rows, require_examples
from lmhub.lm.mlm.types import IGNORE_INDEX, MLMBatch, MLMPredictionBatch

__all__ = ["MLMPretrainCollator", "MLMSeq2SeqCollator", "MLMSeq2SeqPredictionCollator", "corrupt"]


def corrupt(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    mask_token_ratio: float,
    random_token_ratio: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of the ``selected`` positions: ``mask_token_ratio`` of them become
    [MASK], ``random_token_ratio`` a random id below ``vocab_size``, the rest stay; return the
    new ids and the labels (the original ids where selected, ``IGNORE_INDEX`` elsewhere).

    Example:
        >>> ids, labels = corrupt(torch.tensor([[5, 6]]), torch.tensor([[True, False]]),
        ...     mask_token_id=9, vocab_size=9, mask_token_ratio=1.0, random_token_ratio=0.0)
        >>> ids, labels
        (tensor([[9, 6]]), tensor([[   5, -100]]))
    """
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    draw = torch.rand(input_ids.shape)
    to_mask = selected & (draw < mask_token_ratio)
    to_random = (
        selected & (draw >= mask_token_ratio) & (draw < mask_token_ratio + random_token_ratio)
    )
    out = input_ids.masked_fill(to_mask, mask_token_id)
    random_ids = torch.randint(0, vocab_size, input_ids.shape)
    return torch.where(to_random, random_ids, out), labels


@dataclass(kw_only=True)
class _Corruption:
    """The settings every training collator shares."""

    pad_token_id: int
    """Id that fills the padding."""
    mask_token_id: int
    """The [MASK] id."""
    vocab_size: int
    """Random replacements are drawn below this (the tokenizer's vocabulary)."""
    mask_prob: float = 0.15
    """The fraction of eligible tokens selected (pre-training, and ``fixed`` seq2seq)."""
    mask_token_ratio: float = 0.8
    """Of the selected tokens, the fraction replaced by [MASK]."""
    random_token_ratio: float = 0.1
    """Of the selected tokens, the fraction replaced by a random token."""
    max_length: int | None = None
    """Most tokens per row (``None``: no limit)."""

    def _corrupt(
        self, ids: torch.Tensor, selected: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return corrupt(
            ids,
            selected,
            mask_token_id=self.mask_token_id,
            vocab_size=self.vocab_size,
            mask_token_ratio=self.mask_token_ratio,
            random_token_ratio=self.random_token_ratio,
        )


def _at_least_one(selected: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """``selected`` with one random eligible position added to every row that has none."""
    empty = ~selected.any(dim=-1) & eligible.any(dim=-1)
    if bool(empty.any()):
        scores = torch.rand(eligible.shape).masked_fill(~eligible, -1.0)
        pick = torch.zeros_like(selected).scatter_(1, scores.argmax(dim=-1, keepdim=True), True)
        selected = selected | (pick & empty[:, None])
    return selected


@dataclass(kw_only=True)
class MLMPretrainCollator(_Corruption):
    """Selects ``mask_prob`` of the real tokens of each row (at least one) and corrupts them.

    Packed rows (with ``document_ids``) keep their positions and document ids, so attention stays
    within documents.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> collate = MLMPretrainCollator(pad_token_id=0, mask_token_id=9, vocab_size=9,
        ...                               mask_prob=1.0, mask_token_ratio=1.0)
        >>> collate([{"input_ids": [5, 6]}, {"input_ids": [7]}])["input_ids"]
        tensor([[9, 9],
                [9, 0]])
    """

    def __call__(self, examples: list[dict[str, Any]]) -> MLMBatch:
        rows = [ids_of(e, "input_ids")[: self.max_length] for e in require_examples(examples)]
        ids, attention_mask = pad_rows(rows, self.pad_token_id, left=False)
        batch: dict[str, Any] = {"attention_mask": attention_mask}
        if "document_ids" in examples[0]:
            positions = [ids_of(e, "position_ids")[: self.max_length] for e in examples]
            documents = [ids_of(e, "document_ids")[: self.max_length] for e in examples]
            batch["position_ids"] = pad_rows(positions, 0, left=False)[0]
            batch["document_ids"] = pad_rows(documents, -1, left=False)[0]
            batch["attention_mask"] = (batch["document_ids"] >= 0).long()
        eligible = batch["attention_mask"].bool()
        selected = _at_least_one((torch.rand(ids.shape) < self.mask_prob) & eligible, eligible)
        batch["input_ids"], batch["labels"] = self._corrupt(ids, selected)
        return batch  # type: ignore[return-value]


@dataclass(kw_only=True)
class MLMSeq2SeqCollator(_Corruption):
    """Prompt then target per row; only target tokens are selected and corrupted.

    ``masking="uniform"`` draws each row's selected fraction from U(0, 1] (at least one token),
    so training covers every stage of iterative unmasking; ``"fixed"`` selects ``mask_prob``.
    With ``target_length``, targets are padded with PAD up to it (the PADs are targets too, so
    the model learns where a target ends). Too long rows lose the start of the prompt first.

    Example:
        >>> collate = MLMSeq2SeqCollator(pad_token_id=0, mask_token_id=9, vocab_size=9,
        ...                              mask_token_ratio=1.0)
        >>> batch = collate([{"prompt_ids": [5, 6], "target_ids": [7]}])
        >>> batch["input_ids"], batch["labels"]
        (tensor([[5, 6, 9]]), tensor([[-100, -100,    7]]))
    """

    masking: str = "uniform"
    """``uniform`` or ``fixed`` (see the class docstring)."""
    target_length: int | None = None
    """Pad each target with PAD up to this many tokens (``None``: no padding)."""

    def __call__(self, examples: list[dict[str, Any]]) -> MLMBatch:
        rows, prompt_lengths, target_lengths = [], [], []
        for example in require_examples(examples):
            prompt, target = ids_of(example, "prompt_ids"), ids_of(example, "target_ids")
            target = _pad_target(target, self.target_length, self.pad_token_id)
            if self.max_length is not None:
                target = target[: self.max_length]
                prompt = prompt[max(0, len(prompt) + len(target) - self.max_length) :]
            rows.append(np.concatenate([prompt, target]))
            prompt_lengths.append(len(prompt))
            target_lengths.append(len(target))
        ids, attention_mask = pad_rows(rows, self.pad_token_id, left=False)
        cols = torch.arange(ids.shape[1])[None, :]
        starts = torch.tensor(prompt_lengths)[:, None]
        eligible = (cols >= starts) & (cols < starts + torch.tensor(target_lengths)[:, None])
        if self.masking == "uniform":
            rate = 1.0 - torch.rand(len(rows), 1)  # U(0, 1]
        else:
            rate = torch.full((len(rows), 1), self.mask_prob)
        selected = _at_least_one((torch.rand(ids.shape) < rate) & eligible, eligible)
        input_ids, labels = self._corrupt(ids, selected)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _pad_target(target: np.ndarray, length: int | None, pad: int) -> np.ndarray:
    if length is None or len(target) >= length:
        return target
    return np.concatenate([target, np.full(length - len(target), pad, dtype=np.int64)])


@dataclass(kw_only=True)
class MLMSeq2SeqPredictionCollator:
    """Each prompt followed by [MASK] slots for the predictor to fill, right-padded; the gold
    targets kept apart.

    The slots are ``target_length`` many, else as many as the gold target's tokens.

    Example:
        >>> collate = MLMSeq2SeqPredictionCollator(pad_token_id=0, mask_token_id=9)
        >>> batch = collate([{"prompt_ids": [5], "target_ids": [7, 2]},
        ...                  {"prompt_ids": [5, 6], "target_ids": [8]}])
        >>> batch["input_ids"], batch["prompt_lengths"]
        (tensor([[5, 9, 9],
                [5, 6, 9]]), tensor([1, 2]))
    """

    pad_token_id: int
    """Id that fills the padding."""
    mask_token_id: int
    """The [MASK] id of the slots."""
    target_length: int | None = None
    """Slots per row (``None``: the gold target's length)."""
    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> MLMPredictionBatch:
        examples = require_examples(examples)
        start = -self.max_prompt_length if self.max_prompt_length else 0
        rows, prompt_lengths = [], []
        for example in examples:
            prompt = ids_of(example, "prompt_ids")[start:]
            slots = self.target_length or len(ids_of(example, "target_ids"))
            rows.append(np.concatenate([prompt, np.full(slots, self.mask_token_id)]))
            prompt_lengths.append(len(prompt))
        input_ids, attention_mask = pad_rows(rows, self.pad_token_id, left=False)
        target_ids, _ = pad_rows(
            [ids_of(e, "target_ids") for e in examples], IGNORE_INDEX, left=False
        )
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "prompt_lengths": torch.tensor(prompt_lengths),
            "target_ids": target_ids,
        }
