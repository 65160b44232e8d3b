"""ILM: deletion and gap crediting, the joint (gap x token) loss on hand-built batches, the
insertion predictor (prompt gaps closed), and the shipped example config."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import lmhub
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.errors import ConfigError
from lmhub.lm.ilm import ILMLoss, ILMModel, ILMPredictor, ILMSeq2SeqCollator, delete
from lmhub.lm.ilm.options import ILMOptions
from lmhub.train.config_files import load_train_config

CLS = 259


def _model(stop_head: bool = True) -> ILMModel:
    hub = lmhub.get_model_hub("llama")
    config = dataclasses.replace(
        hub.get_arch_config("llama_tiny"), model_dim=32, num_layers=2, num_heads=4,
        num_kv_heads=2, ffn_inner_dim=64, vocab_size=260,
    )  # fmt: skip
    torch.manual_seed(0)
    return ILMModel(hub.create_new_model(config), cls_token_id=CLS, stop_head=stop_head)


def test_deletion_credits_each_token_to_the_nearest_kept_token_on_its_left() -> None:
    tokens = np.arange(10, 20)
    for seed in range(20):
        kept, gone, before = delete(tokens, generator=torch.Generator().manual_seed(seed))
        assert sorted([*kept, *gone]) == list(tokens)
        for token, k in zip(gone, before):
            assert k == sum(1 for t in kept if t < token)  # ascending tokens: order = value


def test_deletion_count_covers_zero_to_all() -> None:
    counts = {len(delete(np.arange(3), generator=torch.Generator().manual_seed(s))[1])
              for s in range(60)}  # fmt: skip
    assert counts == {0, 1, 2, 3}


def test_collator_gaps_close_the_prompt() -> None:
    collate = ILMSeq2SeqCollator(pad_token_id=258, cls_token_id=CLS)
    torch.manual_seed(3)
    batch = collate([{"prompt_ids": [1, 2], "target_ids": [5, 6, 7]}])
    n = int(batch["num_deleted"][0])
    assert batch["input_ids"][0, :3].tolist() == [CLS, 1, 2]
    assert batch["insert_mask"][0].tolist() == [0, 0] + [1] * (4 - n)
    width = batch["input_ids"].shape[1]
    assert all(int(g) % width >= 2 for g in batch["gap_index"])  # never inside the prompt


def test_the_separator_follows_the_prompt_and_holds_the_leading_gap() -> None:
    BOS = 256
    collate = ILMSeq2SeqCollator(pad_token_id=258, cls_token_id=CLS, sep_token_id=BOS)
    torch.manual_seed(0)
    for _ in range(10):
        batch = collate([{"prompt_ids": [1, 2], "target_ids": [5, 6, 7]}])
        n = int(batch["num_deleted"][0])
        assert batch["input_ids"][0, :4].tolist() == [CLS, 1, 2, BOS]
        assert batch["insert_mask"][0].tolist() == [0, 0, 0] + [1] * (4 - n)
        assert all(int(g) >= 3 for g in batch["gap_index"])  # the separator's gap or later
    predict = ILMPredictor(_model(), ByteTokenizer(), sep_token_id=BOS).collator
    batch = predict([{"prompt_ids": [1, 2], "target_ids": [5]}])
    assert batch["input_ids"].tolist() == [[CLS, 1, 2, BOS]]
    assert batch["insert_mask"].tolist() == [[0, 0, 0, 1]]


def test_segment_embedding_starts_at_zero_and_marks_the_open_part() -> None:
    model = _model()
    ids = torch.tensor([[CLS, 1, 2, 256, 5]])
    insert_mask = torch.tensor([[0, 0, 0, 1, 1]])
    plain, _ = model(ids)
    marked, _ = model(ids, insert_mask=insert_mask)
    torch.testing.assert_close(plain, marked)  # zero-initialised: the backbone's function
    assert model.segment_embedding is not None and model.extra["segment_embedding"] is not None
    with torch.no_grad():
        model.segment_embedding.weight[1].fill_(0.5)
    moved, _ = model(ids, insert_mask=insert_mask)
    assert not torch.allclose(plain, moved)
    assert _model().extra.keys() == {"stop_head", "segment_embedding", "position_embedding"}


def test_position_embedding_starts_at_zero_and_saturates_at_max_positions() -> None:
    model = _model()
    ids = torch.tensor([[CLS, 1, 2, 256, 5, 6]])
    plain, _ = model(ids)
    embedding = model.position_embedding
    assert embedding is not None and embedding.num_embeddings == 512
    with torch.no_grad():
        embedding.weight.normal_()
    moved, _ = model(ids)
    assert not torch.allclose(plain, moved)
    small = ILMModel(model.backbone, cls_token_id=CLS, max_positions=2, stop_head=False)
    assert small(torch.tensor([[CLS, 1, 2, 3, 4]]))[0].shape == (1, 5, 260)


def test_loss_on_a_hand_built_batch() -> None:
    model = _model()
    batch = {
        "input_ids": torch.tensor([[CLS, 1, 6], [CLS, 1, 258]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "insert_mask": torch.tensor([[0, 1, 1], [0, 1, 0]]),
        # row 0 lost 5 (left gap: after the prompt's 1) and 7 (after 6); row 1 lost nothing
        "gap_index": torch.tensor([1, 2]),
        "gap_token": torch.tensor([5, 7]),
        "num_deleted": torch.tensor([2, 0]),
    }
    out = ILMLoss(model).loss_fn(batch)
    logits, stop = model(batch["input_ids"], attention_mask=batch["attention_mask"])
    joint = logits[0, 1:].flatten().log_softmax(-1).view(2, -1)  # row 0: gaps 1 and 2 open
    insertion = -(joint[0, 5] + joint[1, 7])
    assert stop is not None
    stop_loss = -torch.log(1 - torch.sigmoid(stop[0])) - torch.log(torch.sigmoid(stop[1]))
    # the mean over 4 predictions: 2 deleted tokens and 2 rows' stop decisions
    torch.testing.assert_close(out["loss"], (insertion + stop_loss) / 4)
    torch.testing.assert_close(out["loss_sum"], insertion + stop_loss)
    assert int(out["num_tokens"]) == 4
    # per row (XLM's): row 0's insertions averaged over its 2 tokens, then the mean over rows
    row = ILMLoss(model, normalization="row").loss_fn(batch)
    torch.testing.assert_close(row["loss"], (insertion / 2 + stop_loss) / 2)
    assert int(row["num_tokens"]) == 2


def test_unknown_loss_normalization_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="normalization"):
        ILMLoss(_model(), normalization="gap")
    with pytest.raises(ConfigError, match="loss_normalization"):
        ILMOptions(loss_normalization="gap").validate()


def test_without_stop_head_the_loss_and_predictor_still_work() -> None:
    model = _model(stop_head=False)
    collate = ILMSeq2SeqCollator(pad_token_id=258, cls_token_id=CLS)
    out = ILMLoss(model).loss_fn(collate([{"prompt_ids": [1], "target_ids": [2, 3]}]))
    assert math.isfinite(out["loss"].item()) and "stop_loss" not in out
    predictor = ILMPredictor(model, ByteTokenizer(), max_new_tokens=3)
    preds = predictor.predict(predictor.collator([{"prompt_ids": [1], "target_ids": [2]}]))
    assert len(preds["ids"][0]) == 3  # runs to its length limit


def test_predictor_keeps_the_prompt_and_never_inserts_specials() -> None:
    model = _model()
    predictor = ILMPredictor(model, ByteTokenizer(), max_new_tokens=4, stop_threshold=0.99)
    batch = predictor.collator([{"prompt_ids": [1, 2, 3], "target_ids": [4]}])
    before = batch["input_ids"].clone()
    (row,) = predictor.insert(batch)
    assert torch.equal(batch["input_ids"], before)
    assert row[:4].tolist() == [CLS, 1, 2, 3] and len(row) == 8
    assert not set(row[4:].tolist()) & {CLS, 258}


def test_example_config_loads() -> None:
    assert load_train_config("ilm_sort").lm_type == "ilm"
