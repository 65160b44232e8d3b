"""ARLM collators, for any list of examples: shapes, padding, and labels exactly where a loss is
taken (never on prompt or padding)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.errors import DataError
from lmhub.lm.arlm import (
    ARLMPretrainCollator,
    ARLMSeq2SeqCollator,
    ARLMSeq2SeqPredictionCollator,
)

PAD = 99
ids = st.lists(st.integers(0, 50), max_size=12)
token_runs = st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=12), min_size=1, max_size=5)
pairs = st.lists(st.tuples(ids, ids), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(token_runs, st.none() | st.integers(1, 12))
def test_pretrain_labels_are_the_ids_except_padding(
    runs: list[list[int]], max_length: int | None
) -> None:
    batch = ARLMPretrainCollator(pad_token_id=PAD, max_length=max_length)(
        [{"input_ids": r} for r in runs]
    )
    kept = [r[:max_length] for r in runs]
    width = max(len(r) for r in kept)
    assert batch["input_ids"].shape == batch["labels"].shape == (len(runs), width)
    for i, row in enumerate(kept):
        n = len(row)
        assert batch["input_ids"][i].tolist() == row + [PAD] * (width - n)
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (width - n)
        assert batch["labels"][i].tolist() == row + [-100] * (width - n)


@settings(max_examples=60, deadline=None)
@given(pairs, st.none() | st.integers(1, 20))
def test_seq2seq_loss_only_on_the_target(
    examples: list[tuple[list[int], list[int]]], max_length: int | None
) -> None:
    batch = ARLMSeq2SeqCollator(pad_token_id=PAD, max_length=max_length)(
        [{"prompt_ids": p, "target_ids": t} for p, t in examples]
    )
    rows = []
    for prompt, target in examples:
        if max_length is not None:  # the target is kept first, then the prompt's end
            target = target[:max_length]
            prompt = prompt[len(prompt) - min(len(prompt), max_length - len(target)) :]
        rows.append((prompt, target))
    width = max(len(p) + len(t) for p, t in rows)
    assert batch["input_ids"].shape == (len(examples), width)
    for i, (prompt, target) in enumerate(rows):
        pad = width - len(prompt) - len(target)
        assert batch["input_ids"][i].tolist() == prompt + target + [PAD] * pad
        assert batch["labels"][i].tolist() == [-100] * len(prompt) + target + [-100] * pad
        assert batch["attention_mask"][i].sum() == len(prompt) + len(target)
    # No loss on prompt or padding: every scored position holds a target token.
    assert int((batch["labels"] != -100).sum()) == sum(len(t) for _, t in rows)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_prediction_left_pads_prompts_and_keeps_targets_apart(
    examples: list[tuple[list[int], list[int]]],
) -> None:
    batch = ARLMSeq2SeqPredictionCollator(pad_token_id=PAD)(
        [{"prompt_ids": p, "target_ids": t} for p, t in examples]
    )
    width = max(len(p) for p, _ in examples)
    t_width = max(len(t) for _, t in examples)
    assert batch["input_ids"].shape == (len(examples), width)
    assert batch["target_ids"].shape == (len(examples), t_width)
    for i, (prompt, target) in enumerate(examples):
        pad = width - len(prompt)
        assert batch["input_ids"][i].tolist() == [PAD] * pad + prompt
        assert batch["attention_mask"][i].tolist() == [0] * pad + [1] * len(prompt)
        assert batch["target_ids"][i].tolist() == target + [-100] * (t_width - len(target))


def test_packed_rows_keep_positions_and_drop_the_loss_at_document_starts() -> None:
    example = {
        "input_ids": [5, 6, 7, 8],
        "position_ids": [3, 0, 1, 0],
        "document_ids": [0, 1, 1, 2],
    }
    batch = ARLMPretrainCollator(pad_token_id=PAD)(
        [example, {**example, "input_ids": [1, 2, 3, 4]}]
    )
    assert batch["position_ids"].tolist()[0] == [3, 0, 1, 0]
    assert batch["document_ids"].tolist()[0] == [0, 1, 1, 2]
    assert batch["labels"].tolist()[0] == [5, -100, 7, -100]
    padded = {"input_ids": [5, 6, PAD], "position_ids": [0, 1, 0], "document_ids": [0, 0, -1]}
    batch = ARLMPretrainCollator(pad_token_id=PAD)([padded])
    assert batch["attention_mask"].tolist() == [[1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 6, -100]]


def test_inputs_are_not_modified_and_tensors_are_accepted() -> None:
    prompt = torch.tensor([1, 2])
    example = {"prompt_ids": prompt, "target_ids": [3]}
    batch = ARLMSeq2SeqCollator(pad_token_id=PAD)([example])
    batch["input_ids"][0, 0] = 42
    assert prompt.tolist() == [1, 2] and example["target_ids"] == [3]


def test_missing_key_and_empty_batch_are_clear_errors() -> None:
    with pytest.raises(DataError, match="'target_ids'"):
        ARLMSeq2SeqCollator(pad_token_id=PAD)([{"prompt_ids": [1]}])
    with pytest.raises(DataError, match="no examples"):
        ARLMPretrainCollator(pad_token_id=PAD)([])
