"""The three MDLM collators: pre-training, seq2seq training, and seq2seq prediction.

The training collators noise each row to a time ``t`` (drawn low-discrepancy over the batch)
under the log-linear schedule: every diffused token is replaced by the mask id with
probability ``1 - exp(-sigma(t))``. They draw from ``generator`` (``None``: torch's global RNG,
which the trainer seeds, saves and restores). None modifies its input.

Seq2seq rows are the prompt then the target cut or padded to ``target_length`` with the pad id;
the padding is diffused like the target, so the model learns where the target ends and the
predictor can fill a fixed number of positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lmhub.lm.batching import ids_of as _ids
from lmhub.lm.batching import pad_rows as _pad
from lmhub.lm.batching import require_examples as _nonempty
from lmhub.lm.mdlm.schedule import LogLinearSchedule, sample_times
from lmhub.lm.mdlm.types import IGNORE_INDEX, MDLMBatch, MDLMPredictionBatch

__all__ = [
    "MDLMPretrainCollator",
    "MDLMSeq2SeqCollator",
    "MDLMSeq2SeqPredictionCollator",
    "noise_batch",
]


def noise_batch(
    input_ids: torch.Tensor,
    diffused_mask: torch.Tensor,
    t: torch.Tensor,
    *,
    mask_token_id: int,
    schedule: LogLinearSchedule,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each diffused token of row ``b`` with probability ``schedule.mask_probability(t[b])``;
    return the noised ids (a new tensor) and the labels (clean ids where masked, else
    ``IGNORE_INDEX``)."""
    p = schedule.mask_probability(t)[:, None]
    masked = (torch.rand(input_ids.shape, generator=generator) < p) & diffused_mask.bool()
    noised = input_ids.masked_fill(masked, mask_token_id)
    labels = input_ids.masked_fill(~masked, IGNORE_INDEX)
    return noised, labels


@dataclass(kw_only=True)
class _Noising:
    pad_token_id: int
    """Id that fills the padding."""
    mask_token_id: int
    """Id of the mask (absorbing) state; outside the tokenizer's ids, inside the model's vocab."""
    schedule: LogLinearSchedule = field(default_factory=LogLinearSchedule)
    """The noise schedule."""
    min_t: float = 1e-3
    """Smallest diffusion time drawn (the NELBO weight is ``1 / t``)."""
    generator: torch.Generator | None = None
    """The RNG of times and masks (``None``: torch's global RNG)."""

    def _noised(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, diffused: torch.Tensor
    ) -> MDLMBatch:
        t = sample_times(input_ids.shape[0], min_t=self.min_t, generator=self.generator)
        noised, labels = noise_batch(
            input_ids,
            diffused,
            t,
            mask_token_id=self.mask_token_id,
            schedule=self.schedule,
            generator=self.generator,
        )
        return {
            "input_ids": noised,
            "attention_mask": attention_mask,
            "labels": labels,
            "diffused_mask": diffused.long(),
            "t": t,
        }


@dataclass(kw_only=True)
class MDLMPretrainCollator(_Noising):
    """Batches runs of token ids (documents or packed rows) and noises every real token.

    Example:
        >>> collate = MDLMPretrainCollator(pad_token_id=0, mask_token_id=9)
        >>> batch = collate([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
        >>> sorted(batch)
        ['attention_mask', 'diffused_mask', 'input_ids', 'labels', 't']
    """

    max_length: int | None = None
    """Cut longer rows to this many tokens (``None``: keep every token)."""

    def __call__(self, examples: list[dict[str, Any]]) -> MDLMBatch:
        rows = [_ids(e, "input_ids")[: self.max_length] for e in _nonempty(examples)]
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        extra: dict[str, torch.Tensor] = {}
        if "document_ids" in examples[0]:
            positions = [_ids(e, "position_ids")[: self.max_length] for e in examples]
            documents = [_ids(e, "document_ids")[: self.max_length] for e in examples]
            extra["position_ids"] = _pad(positions, 0, left=False)[0]
            extra["document_ids"] = _pad(documents, -1, left=False)[0]
            attention_mask = (extra["document_ids"] >= 0).long()  # a packed row's padding
        batch = self._noised(input_ids, attention_mask, attention_mask.bool())
        batch.update(extra)  # type: ignore[typeddict-item]
        return batch


@dataclass(kw_only=True)
class MDLMSeq2SeqCollator(_Noising):
    """Batches prompt + target rows and noises the target part only.

    Example:
        >>> collate = MDLMSeq2SeqCollator(pad_token_id=0, mask_token_id=9, target_length=3)
        >>> collate([{"prompt_ids": [5, 6], "target_ids": [7]}])["diffused_mask"]
        tensor([[0, 0, 1, 1, 1]])
    """

    target_length: int | None = None
    """Cut or pad every target to this many tokens, the padding diffused too (``None``: keep
    targets as they are; the batch padding then takes no part)."""
    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> MDLMBatch:
        rows, diffused = [], []
        for example in _nonempty(examples):
            prompt = _prompt(example, self.max_prompt_length)
            target = _target(example, self.target_length, self.pad_token_id)
            rows.append(np.concatenate([prompt, target]))
            diffused.append(np.r_[np.zeros(len(prompt), np.int64), np.ones(len(target), np.int64)])
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        diffused_mask = _pad(diffused, 0, left=False)[0].bool()
        return self._noised(input_ids, attention_mask, diffused_mask)


@dataclass(kw_only=True)
class MDLMSeq2SeqPredictionCollator:
    """Batches each prompt followed by ``target_length`` mask ids, and keeps the gold targets.

    Example:
        >>> collate = MDLMSeq2SeqPredictionCollator(pad_token_id=0, mask_token_id=9,
        ...                                         target_length=2)
        >>> collate([{"prompt_ids": [5], "target_ids": [7]}])["input_ids"]
        tensor([[5, 9, 9]])
    """

    pad_token_id: int
    """Id that fills the padding."""
    mask_token_id: int
    """Id of the mask (absorbing) state."""
    target_length: int
    """How many positions to generate after each prompt."""
    max_prompt_length: int | None = None
    """Keep only the last this many prompt tokens (``None``: no limit)."""

    def __call__(self, examples: list[dict[str, Any]]) -> MDLMPredictionBatch:
        examples = _nonempty(examples)
        rows, diffused = [], []
        for example in examples:
            prompt = _prompt(example, self.max_prompt_length)
            rows.append(np.r_[prompt, np.full(self.target_length, self.mask_token_id)])
            diffused.append(np.r_[np.zeros(len(prompt)), np.ones(self.target_length)])
        input_ids, attention_mask = _pad(rows, self.pad_token_id, left=False)
        targets = [_ids(e, "target_ids") for e in examples]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "diffused_mask": _pad([d.astype(np.int64) for d in diffused], 0, left=False)[0],
            "target_ids": _pad(targets, IGNORE_INDEX, left=False)[0],
        }


def _prompt(example: dict[str, Any], max_length: int | None) -> np.ndarray:
    prompt = _ids(example, "prompt_ids")
    return prompt[-max_length:] if max_length else prompt


def _target(example: dict[str, Any], length: int | None, pad_token_id: int) -> np.ndarray:
    target = _ids(example, "target_ids")
    if length is None:
        return target
    target = target[:length]
    return np.r_[target, np.full(length - len(target), pad_token_id, dtype=np.int64)]
