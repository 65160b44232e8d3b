"""`ARLMPredictor` on a tiny Llama: batched predictions equal one-by-one generation, EOS ends a
prediction, and records carry prompt, target and prediction."""

from __future__ import annotations

import json

import torch

import lmhub
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.lm.arlm import ARLMPredictor, ARLMSeq2SeqPredictionCollator
from lmhub.models.decoder import DecoderLM


def test_batched_predictions_equal_single_generation(model: DecoderLM) -> None:
    tok = ByteTokenizer()
    predictor = ARLMPredictor(model, tok, max_new_tokens=6)
    examples = [
        {"prompt_ids": tok.encode("ab", add_bos=True), "target_ids": tok.encode("c", add_eos=True)},
        {"prompt_ids": tok.encode("hello", add_bos=True), "target_ids": tok.encode("x")},
    ]
    batch = ARLMSeq2SeqPredictionCollator(pad_token_id=258)(examples)
    preds = predictor.predict(batch)
    for i, example in enumerate(examples):
        alone = torch.tensor([example["prompt_ids"]])
        want = lmhub.generate(model, alone, max_new_tokens=6, eos_token_id=257)[0, alone.shape[1] :]
        assert torch.equal(preds["ids"][i], want)
        assert preds["text"][i] == tok.decode(want)
    records = predictor.to_dict(batch, preds)
    assert [r["prompt"] for r in records] == ["ab", "hello"]
    assert [r["target"] for r in records] == ["c", "x"]
    assert [r["prediction"] for r in records] == preds["text"]
    json.dumps(records)  # JSON lines need plain values
    assert model.training  # predict restores the mode it found


def test_generate_from_text_matches_predict(model: DecoderLM) -> None:
    tok = ByteTokenizer()
    tok.add_bos_token = True
    predictor = ARLMPredictor(model, tok, max_new_tokens=4)
    texts = predictor.generate(["hi", "there"])
    batch = predictor.collator(
        [{"prompt_ids": tok.encode(t, add_bos=True), "target_ids": []} for t in ("hi", "there")]
    )
    assert texts == predictor.predict(batch)["text"]


class _EosIsZero(ByteTokenizer):
    def __init__(self) -> None:
        super().__init__()
        self.eos_token_id = 0


def test_prediction_ends_right_after_eos(model: DecoderLM) -> None:
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit ties; the arg-max is id 0, here EOS
    predictor = ARLMPredictor(model, _EosIsZero(), max_new_tokens=5)
    batch = predictor.collator([{"prompt_ids": [1, 2], "target_ids": [0]}])
    assert predictor.predict(batch)["ids"][0].tolist() == [0]
