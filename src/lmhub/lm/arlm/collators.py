"""The three ARLM collators: pre-training, seq2seq training, and seq2seq prediction.

Each is a small dataclass called with a list of examples (:class:`~lmhub.lm.protocols.
TokensExample` or :class:`~lmhub.lm.protocols.Seq2SeqExample`); none modifies its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lmhub.lm.arlm.types import IGNORE_INDEX, ARLMBatch, ARLMPredictionBatch
from lmhub.lm.batching import ids_of, pad_rows, require_examples

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
        rows = [ids_of(e, "input_ids")[: self.max_length] for e in require_examples(examples)]
        input_ids, attention_mask = pad_rows(rows, self.pad_token_id, left=False)
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        batch: ARLMBatch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        if "document_ids" in examples[0]:
            positions = [ids_of(e, "position_ids")[: self.max_length] for e in examples]
            documents = [ids_of(e, "document_ids")[: self.max_length] for e in examples]
            batch["position_ids"] = pad_rows(positions, 0, left=False)[0]
            batch["document_ids"] = pad_rows(documents, -1, left=False)[0]
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
        for example in require_examples(examples):
            prompt, target = ids_of(example, "prompt_ids"), ids_of(example, "target_ids")
            if self.max_length is not None:
                target = target[: self.max_length]
                prompt = prompt[max(0, len(prompt) + len(target) - self.max_length) :]
            rows.append(np.concatenate([prompt, target]))
            prompt_lengths.append(len(prompt))
        input_ids, attention_mask = pad_rows(rows, self.pad_token_id, left=False)
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
        examples = require_examples(examples)
        start = -self.max_prompt_length if self.max_prompt_length else 0
        prompts = [ids_of(e, "prompt_ids")[start:] for e in examples]
        input_ids, attention_mask = pad_rows(prompts, self.pad_token_id, left=True)
        targets = [ids_of(e, "target_ids") for e in examples]
        target_ids, _ = pad_rows(targets, IGNORE_INDEX, left=False)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "target_ids": target_ids}
