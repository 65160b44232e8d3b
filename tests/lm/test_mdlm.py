"""MDLM: the log-linear schedule, noising, the per-token NELBO on hand-built batches, the
reverse-process predictor, and the shipped example config."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

import lmhub
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.lm.mdlm import (
    LogLinearSchedule,
    MDLMLoss,
    MDLMModel,
    MDLMPredictor,
    MDLMSeq2SeqCollator,
    noise_batch,
    sample_times,
)
from lmhub.train.config_files import load_train_config

MASK = 259


def _model(time_conditioning: bool = False) -> MDLMModel:
    hub = lmhub.get_model_hub("llama")
    config = dataclasses.replace(
        hub.get_arch_config("llama_tiny"), model_dim=32, num_layers=2, num_heads=4,
        num_kv_heads=2, ffn_inner_dim=64, vocab_size=260,
    )  # fmt: skip
    torch.manual_seed(0)
    backbone = hub.create_new_model(config)
    return MDLMModel(backbone, mask_token_id=MASK, time_conditioning=time_conditioning)


def test_log_linear_weight_is_one_over_t_and_mask_probability_about_t() -> None:
    s = LogLinearSchedule(eps=1e-3)
    t = torch.tensor([0.01, 0.3, 0.9, 1.0])
    torch.testing.assert_close(s.weight(t), 1 / t)
    torch.testing.assert_close(s.mask_probability(t), (1 - 1e-3) * t)
    assert math.isfinite(float(s.sigma(torch.tensor(1.0))))


def test_sample_times_are_low_discrepancy() -> None:
    t = sample_times(8, min_t=0.0, generator=torch.Generator().manual_seed(0))
    gaps = torch.sort(t).values.diff()
    torch.testing.assert_close(gaps, torch.full((7,), 1 / 8))


def test_noising_masks_only_diffused_tokens_and_labels_them() -> None:
    ids = torch.tensor([[5, 6, 7, 8]])
    diffused = torch.tensor([[0, 1, 1, 1]])
    noised, labels = noise_batch(
        ids, diffused, torch.tensor([1.0]), mask_token_id=MASK, schedule=LogLinearSchedule(eps=0)
    )
    assert noised.tolist() == [[5, MASK, MASK, MASK]]
    assert labels.tolist() == [[-100, 6, 7, 8]]
    assert ids.tolist() == [[5, 6, 7, 8]]  # the caller's tensor is untouched


def test_nelbo_on_a_hand_built_batch() -> None:
    model = _model()
    batch = {
        "input_ids": torch.tensor([[5, MASK, 7, MASK], [5, 6, MASK, 8]]),
        "attention_mask": torch.ones(2, 4, dtype=torch.long),
        "labels": torch.tensor([[-100, 6, -100, 8], [-100, -100, 7, -100]]),
        "diffused_mask": torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]]),
        "t": torch.tensor([0.5, 0.25]),
    }
    out = MDLMLoss(model).loss_fn(batch)
    logits = model(batch["input_ids"], sigma=torch.zeros(2))
    ce = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="none")
    ce = ce.view(2, 4)
    expected = (2 * (ce[0, 1] + ce[0, 3]) + 4 * ce[1, 2]) / 6  # weights 1/t, 6 diffused tokens
    torch.testing.assert_close(out["loss"], expected)
    assert int(out["num_tokens"]) == 6 and int(out["num_masked"]) == 3
    assert logits[..., MASK].isinf().all()  # the absorbing state is never predicted


def test_seq2seq_collator_pads_targets_and_diffuses_only_them() -> None:
    collate = MDLMSeq2SeqCollator(pad_token_id=258, mask_token_id=MASK, target_length=3)
    torch.manual_seed(0)
    batch = collate(
        [{"prompt_ids": [1, 2], "target_ids": [3]}, {"prompt_ids": [4], "target_ids": [5, 6]}]
    )
    assert batch["diffused_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]]
    clean = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
    assert clean.tolist() == [[1, 2, 3, 258, 258], [4, 5, 6, 258, 258]]


def test_predictor_fills_every_position_and_keeps_the_prompt() -> None:
    model = _model(time_conditioning=True)
    predictor = MDLMPredictor(model, ByteTokenizer(), target_length=4, max_steps=3)
    batch = predictor.collator([{"prompt_ids": [1, 2, 3], "target_ids": [4]}])
    before = batch["input_ids"].clone()
    x = predictor.sample(batch)
    assert torch.equal(batch["input_ids"], before)  # the batch is not edited
    assert x[0, :3].tolist() == [1, 2, 3] and not (x == MASK).any()
    again = predictor.sample(batch)
    assert torch.equal(x, again)  # seeded per call: repeatable


def test_example_config_loads() -> None:
    config = load_train_config("mdlm_reverse")
    assert config.lm_type == "mdlm" and config.lm_options["target_length"] == 9
