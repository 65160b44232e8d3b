"""The MLM type's parts on hand-built batches: corruption, the collators, the loss against plain
cross-entropy, and iterative unmasking."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from lmhub.data.tokenizers import ByteTokenizer
from lmhub.errors import ConfigError
from lmhub.lm.mlm import (
    IGNORE_INDEX,
    MLMLoss,
    MLMOptions,
    MLMPredictor,
    MLMPretrainCollator,
    MLMSeq2SeqCollator,
    MLMSeq2SeqPredictionCollator,
    corrupt,
    unmask,
)
from tests.lm.models import tiny_llama

MASK = 259


def test_corrupt_splits_selected_tokens_into_mask_random_and_keep() -> None:
    torch.manual_seed(0)
    ids = torch.full((200, 100), 5)
    selected = torch.rand(ids.shape) < 0.5
    out, labels = corrupt(
        ids, selected, mask_token_id=MASK, vocab_size=259, mask_token_ratio=0.8,
        random_token_ratio=0.1,
    )  # fmt: skip
    assert torch.equal(labels == IGNORE_INDEX, ~selected)
    assert torch.equal(out[~selected], ids[~selected])  # unselected tokens never change
    n = int(selected.sum())
    masked = int((out == MASK).sum())
    changed = int(((out != MASK) & (out != 5)).sum())
    assert abs(masked / n - 0.8) < 0.02
    assert abs(changed / n - 0.1 * 258 / 259) < 0.02  # a random draw may pick 5 again
    assert int((out >= 259).sum() - masked) == 0  # random ids stay in the tokenizer's range


def test_pretrain_collator_selects_real_tokens_only_and_at_least_one() -> None:
    torch.manual_seed(0)
    collate = MLMPretrainCollator(pad_token_id=258, mask_token_id=MASK, vocab_size=259,
                                  mask_prob=1e-6)  # fmt: skip
    examples = [{"input_ids": [1, 2, 3, 4]}, {"input_ids": [5]}]
    kept = copy.deepcopy(examples)
    batch = collate(examples)
    assert examples == kept
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    scored = batch["labels"] != IGNORE_INDEX
    assert scored.sum(dim=-1).tolist() == [1, 1]  # the floor of one per row
    assert not bool((scored & (batch["attention_mask"] == 0)).any())


def test_pretrain_collator_keeps_packed_rows_documents() -> None:
    collate = MLMPretrainCollator(pad_token_id=258, mask_token_id=MASK, vocab_size=259)
    batch = collate([{"input_ids": [1, 2, 3, 258], "position_ids": [0, 1, 0, 0],
                      "document_ids": [0, 0, 1, -1]}])  # fmt: skip
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0]]
    assert batch["document_ids"].tolist() == [[0, 0, 1, -1]]
    assert batch["labels"][0, 3] == IGNORE_INDEX


def test_seq2seq_collator_only_selects_the_target_and_pads_it_to_target_length() -> None:
    torch.manual_seed(0)
    collate = MLMSeq2SeqCollator(pad_token_id=258, mask_token_id=MASK, vocab_size=259,
                                 mask_token_ratio=1.0, target_length=4)  # fmt: skip
    for _ in range(20):
        batch = collate([{"prompt_ids": [1, 2, 3], "target_ids": [7, 257]},
                         {"prompt_ids": [4], "target_ids": [8, 9, 257]}])  # fmt: skip
        scored = batch["labels"] != IGNORE_INDEX
        assert not bool(scored[0, :3].any()) and not bool(scored[1, :1].any())
        assert bool(scored.any(dim=-1).all())
        # Where selected, the input is [MASK] (ratio 1.0) and the label the original id.
        assert bool((batch["input_ids"][scored] == MASK).all())
    assert batch["input_ids"].shape == (2, 7)  # 3 + 4 (padded target) vs 1 + 4
    labels_or_ids = torch.where(scored, batch["labels"], batch["input_ids"])
    assert labels_or_ids[0].tolist() == [1, 2, 3, 7, 257, 258, 258]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 1, 0, 0]


def test_uniform_masking_covers_fully_masked_targets() -> None:
    torch.manual_seed(0)
    collate = MLMSeq2SeqCollator(pad_token_id=258, mask_token_id=MASK, vocab_size=259,
                                 mask_token_ratio=1.0)  # fmt: skip
    batch = collate([{"prompt_ids": [1], "target_ids": [2, 3, 4, 5]}] * 400)
    counts = (batch["labels"] != IGNORE_INDEX).sum(dim=-1)
    assert set(counts.tolist()) == {1, 2, 3, 4}


def test_prediction_collator_gives_mask_slots_and_keeps_targets_apart() -> None:
    collate = MLMSeq2SeqPredictionCollator(pad_token_id=258, mask_token_id=MASK)
    batch = collate([{"prompt_ids": [1, 2], "target_ids": [3, 4]},
                     {"prompt_ids": [5], "target_ids": [6]}])  # fmt: skip
    assert batch["input_ids"].tolist() == [[1, 2, MASK, MASK], [5, MASK, 258, 258]]
    assert batch["prompt_lengths"].tolist() == [2, 1]
    assert batch["target_ids"].tolist() == [[3, 4], [6, IGNORE_INDEX]]


def test_loss_is_cross_entropy_on_the_labelled_positions() -> None:
    model = tiny_llama()
    ids = torch.tensor([[1, 258, 3, 4], [5, 258, 7, 0]])
    batch = {
        "input_ids": ids,
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        "labels": torch.tensor([[-100, 2, -100, 9], [-100, 6, -100, -100]]),
    }
    out = MLMLoss(model).loss_fn(batch)
    logits = model(ids, attention_mask=batch["attention_mask"], causal=False)
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
    assert int(out["num_tokens"]) == 3
    assert torch.allclose(out["loss_sum"], expected, atol=1e-5)
    assert torch.allclose(out["loss"], expected / 3, atol=1e-6)


class _Oracle(torch.nn.Module):
    """A fake backbone whose hidden state at each position is the one-hot of a fixed answer,
    with a confidence that grows along the sequence (so the unmasking order is known)."""

    def __init__(self, answer: list[int], vocab: int) -> None:
        super().__init__()
        self.answer, self.vocab, self.calls = answer, vocab, []

    def forward(self, ids, *, attention_mask=None, position_ids=None, causal=True,
                return_hidden=False):  # type: ignore[no-untyped-def]  # fmt: skip
        assert causal is False and return_hidden
        self.calls.append(ids.clone())
        hidden = torch.zeros(*ids.shape, self.vocab)
        for i, token in enumerate(self.answer):
            hidden[:, i, token] = 0.1 * (1 + i)  # later positions are more confident
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden * 5


def test_unmask_fills_the_most_confident_slots_first_within_max_steps() -> None:
    vocab = 12
    oracle = _Oracle([1, 2, 3, 4, 5, 6], vocab)
    batch = {"input_ids": torch.tensor([[1, 2, 11, 11, 11, 11]]),
             "attention_mask": torch.ones(1, 6, dtype=torch.long)}  # fmt: skip
    kept = batch["input_ids"].clone()
    out = unmask(oracle, batch, mask_token_id=11, steps=2, forbidden=[11])  # type: ignore[arg-type]
    assert out.tolist() == [[1, 2, 3, 4, 5, 6]]
    assert torch.equal(batch["input_ids"], kept)  # the caller's batch is untouched
    assert len(oracle.calls) == 2
    assert oracle.calls[1].tolist() == [[1, 2, 11, 11, 5, 6]]  # the two most confident first


def test_unmask_never_predicts_forbidden_ids() -> None:
    oracle = _Oracle([11, 11, 11], 12)  # the oracle wants [MASK] everywhere
    batch = {"input_ids": torch.tensor([[11, 11, 11]]), "attention_mask": torch.ones(1, 3)}
    out = unmask(oracle, batch, mask_token_id=11, steps=3, forbidden=[11, 0])  # type: ignore[arg-type]
    assert not bool(((out == 11) | (out == 0)).any())


def test_predictor_cuts_at_eos_and_samples_with_top_k_and_top_p_together() -> None:
    tok = ByteTokenizer()
    model = tiny_llama()
    predictor = MLMPredictor(model, tok, mask_token_id=258, pad_token_id=258, steps=3,
                             temperature=1.0, top_k=5, top_p=0.9)  # fmt: skip
    batch = predictor.collator([{"prompt_ids": [1, 2], "target_ids": [3, 4, 257]}])
    torch.manual_seed(0)
    preds = predictor.predict(batch)
    assert len(preds["ids"]) == 1 and len(preds["ids"][0]) <= 3
    assert all(int(t) not in (256, 258) for t in preds["ids"][0])  # BOS and [MASK] never


def test_options_refuse_out_of_range_values() -> None:
    with pytest.raises(ConfigError, match=r"lm_options\.random_token_ratio"):
        MLMOptions(mask_token_ratio=0.95, random_token_ratio=0.1).validate()
    with pytest.raises(ConfigError, match=r"lm_options\.predict_steps"):
        MLMOptions(predict_steps=0).validate()
