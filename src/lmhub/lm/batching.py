"""Helpers every LM type shares: reading an example's ids and padding rows (collators), and
writing prediction records (predictors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import DataError
from lmhub.lm.protocols import IGNORE_INDEX

__all__ = ["ids_of", "pad_rows", "prediction_records", "require_examples"]


def require_examples(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``examples``, refused when empty (a collator cannot make an empty batch)."""
    if not examples:
        raise DataError("A collator was given no examples. Pass at least one example per batch.")
    return examples


def ids_of(example: dict[str, Any], key: str) -> np.ndarray:
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


def pad_rows(
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


def prompt_examples(tokenizer: Tokenizer, prompts: Sequence[str]) -> list[dict[str, Any]]:
    """Prediction examples (``prompt_ids``, empty ``target_ids``) of raw prompt texts, encoded
    as the training data's prompts were: with BOS where the tokenizer adds one (a run's
    tokenizer carries its recorded ``data.add_bos``, see ``lmhub.train.lm_state``).

    Example:
        >>> from lmhub.data.tokenizers import ByteTokenizer
        >>> prompt_examples(ByteTokenizer(), ["ab"])
        [{'prompt_ids': [97, 98], 'target_ids': []}]
    """
    add_bos = tokenizer.add_bos_token and tokenizer.bos_token_id is not None
    return [{"prompt_ids": tokenizer.encode(p, add_bos=add_bos), "target_ids": []} for p in prompts]


def prediction_records(
    tokenizer: Tokenizer,
    prompts: Sequence[torch.Tensor],
    target_ids: torch.Tensor,
    preds: dict[str, Any],
) -> list[dict[str, Any]]:
    """One JSON-lines record per row, as every type writes them: the ``prompt`` (each row's
    prompt ids, as the predictor cut them out of its batch), ``target`` (``target_ids`` without
    ``IGNORE_INDEX``) and ``prediction`` texts, and the prediction's ids."""
    records = []
    for prompt, target, text, ids in zip(prompts, target_ids, preds["text"], preds["ids"]):
        records.append(
            {
                "prompt": tokenizer.decode(prompt),
                "target": tokenizer.decode(target[target != IGNORE_INDEX]),
                "prediction": text,
                "prediction_ids": ids.tolist(),
            }
        )
    return records
