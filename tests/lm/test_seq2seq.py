"""The seq2seq LM type: collators, the teacher-forced loss, the predictor, their fit to the
trainer's protocols, and a short end-to-end fit on digit reversal through the components."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import lmhub
from lmhub.data.synth import synth_examples
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.errors import ConfigError
from lmhub.lm import Collator, LossFunction, Predictor
from lmhub.lm.metrics import Seq2SeqExactMatch
from lmhub.lm.registry import get_lm_type
from lmhub.lm.seq2seq import (
    IGNORE_INDEX,
    Seq2SeqCollator,
    Seq2SeqLoss,
    Seq2SeqPredictionCollator,
    Seq2SeqPredictor,
)
from lmhub.train.lm_state import build_components

FAMILIES = ["t5", "transformer"]


def tiny(family: str, **overrides: Any) -> Any:
    hub = lmhub.get_model_hub(family)
    shape = {"model_dim": 64, "num_layers": 2, "num_decoder_layers": 2, "ffn_inner_dim": 128}
    config = lmhub.apply_overrides(hub.get_arch_config(f"{family}_tiny"), {**shape, **overrides})
    torch.manual_seed(0)
    return hub.create_new_model(config)


def test_collators_pad_sources_and_ignore_target_padding() -> None:
    examples = [
        {"prompt_ids": [5, 6, 7], "target_ids": [8, 9, 2]},
        {"prompt_ids": [5], "target_ids": [2]},
    ]
    batch = Seq2SeqCollator(pad_token_id=0)(examples)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[8, 9, 2], [2, IGNORE_INDEX, IGNORE_INDEX]]
    short = Seq2SeqCollator(pad_token_id=0, max_length=2)(examples)
    assert short["input_ids"].tolist() == [[6, 7], [5, 0]]  # sources lose their start
    assert short["labels"].tolist() == [[8, 9], [2, IGNORE_INDEX]]  # targets their end
    pred = Seq2SeqPredictionCollator(pad_token_id=0)(examples)
    assert pred["target_ids"].tolist() == batch["labels"].tolist()
    assert examples[0]["prompt_ids"] == [5, 6, 7]  # inputs untouched


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_is_cross_entropy_of_the_teacher_forced_logits(family: str) -> None:
    model = tiny(family).eval()
    batch = Seq2SeqCollator(pad_token_id=258)(
        [
            {"prompt_ids": [10, 11, 12, 13], "target_ids": [20, 21, 257]},
            {"prompt_ids": [14, 15], "target_ids": [257]},
        ]
    )
    out = Seq2SeqLoss(model, chunk_size=2).loss_fn(batch)
    start = model.config.decoder_start_token_id
    decoder_in = torch.tensor([[start, 20, 21], [start, 257, 258]])
    logits = model(batch["input_ids"], decoder_in, attention_mask=batch["attention_mask"])
    want = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
    assert int(out["num_tokens"]) == 4
    assert torch.allclose(out["loss_sum"], want, atol=1e-5)
    assert torch.allclose(out["loss"], want / 4, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_components_meet_the_protocols_and_refuse_what_does_not_fit(family: str) -> None:
    model, tok = tiny(family), ByteTokenizer()

    def build(lm_type: str, model: Any, kind: str) -> Any:
        return build_components(
            get_lm_type(lm_type), model, tok, kind, options={}, seq_len=32, max_new_tokens=8
        )

    parts = build("seq2seq", model, "seq2seq")
    assert isinstance(parts.train_collator, Collator)
    assert isinstance(parts.loss, LossFunction)
    assert isinstance(parts.predictor, Predictor)
    with pytest.raises(ConfigError, match="prompt/target") as info:
        build("seq2seq", model, "text")
    assert info.value.field == "lm_type"
    with pytest.raises(ConfigError, match="lm_type=seq2seq"):
        build("arlm", model, "seq2seq")
    hub = lmhub.get_model_hub("llama")
    decoder = hub.create_new_model(hub.get_arch_config("llama_tiny"), meta=True)
    with pytest.raises(ConfigError, match="encoder-decoder"):
        build("seq2seq", decoder, "seq2seq")


@pytest.mark.parametrize("num_beams", [1, 3])
def test_predictor_cuts_at_eos_and_writes_records(num_beams: int) -> None:
    model, tok = tiny("transformer"), ByteTokenizer()
    calls = []

    def scripted_logits(hidden: torch.Tensor) -> torch.Tensor:
        # Two "7"s, then EOS, then "9" (which the cut must drop), whatever the input.
        step = len(calls)
        calls.append(step)
        logits = torch.zeros(*hidden.shape[:-1], 259)
        logits[..., [ord("7"), ord("7"), 257][step] if step < 3 else ord("9")] = 10.0
        return logits

    model.logits = scripted_logits  # type: ignore[method-assign]
    predictor = Seq2SeqPredictor(model, tok, max_new_tokens=5, num_beams=num_beams)
    examples = [{"prompt_ids": tok.encode("12"), "target_ids": [*tok.encode("77"), 257]}]
    batch = predictor.collator(examples)
    model.train()
    preds = predictor.predict(batch)
    assert preds["ids"][0].tolist() == [55, 55, 257]
    assert preds["text"] == ["77"]
    assert predictor.to_dict(batch, preds) == [
        {"prompt": "12", "target": "77", "prediction": "77", "prediction_ids": [55, 55, 257]}
    ]
    assert model.training  # predict restores the training mode


@pytest.mark.slow
def test_transformer_learns_four_digit_reversal() -> None:
    tok = ByteTokenizer()

    def encode(n: int, seed: int) -> list[dict[str, list[int]]]:
        return [
            {
                "prompt_ids": [tok.bos_token_id, *tok.encode(e["prompt"])],
                "target_ids": [*tok.encode(e["target"]), tok.eos_token_id],
            }
            for e in synth_examples("reverse", n, digits=4, seed=seed)
        ]

    train, valid = encode(4000, 0), encode(100, 1)
    model = tiny("transformer", dropout_p=0.0).train()
    loss, collate = Seq2SeqLoss(model), Seq2SeqCollator(pad_token_id=258)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for step in range(150):
        out = loss.loss_fn(collate(train[step * 32 % 4000 :][:32]))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    predictor = Seq2SeqPredictor(model, tok, max_new_tokens=6)
    batch = predictor.collator(valid)
    exact = Seq2SeqExactMatch()
    exact.update(predictor.predict(batch)["ids"], batch["target_ids"])
    assert exact.compute() >= 0.9
