"""The ARLM components fit each other and the data pipeline: a JSONL file of prompt/target pairs
goes through the token cache and the collators; a few optimiser steps on the loss make the
predictor reproduce the targets (exact match 1.0), and a text file packs and trains the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmhub.data.packing import PackedDataset
from lmhub.data.sources import DataSource
from lmhub.data.token_cache import tokenize_source
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.lm import Collator, LossFunction, Predictor
from lmhub.lm.arlm import (
    ARLMLoss,
    ARLMPredictor,
    ARLMPretrainCollator,
    ARLMSeq2SeqCollator,
    ARLMSeq2SeqPredictionCollator,
)
from lmhub.lm.metrics import MeanLoss, Seq2SeqExactMatch, Seq2SeqTokenAccuracy
from tests.lm.models import tiny_llama


def test_components_meet_the_protocols() -> None:
    model, tok = tiny_llama(), ByteTokenizer()
    for collator in (
        ARLMPretrainCollator(pad_token_id=0),
        ARLMSeq2SeqCollator(pad_token_id=0),
        ARLMSeq2SeqPredictionCollator(pad_token_id=0),
    ):
        assert isinstance(collator, Collator)
    assert isinstance(ARLMLoss(model), LossFunction)
    assert isinstance(ARLMPredictor(model, tok), Predictor)


def test_seq2seq_overfit_reaches_exact_match_one(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "ab=", "target": "ba"}\n{"prompt": "xyz=", "target": "zyx"}\n')
    tok = ByteTokenizer()
    tok.add_bos_token = True  # the cache and the predictor both follow the tokenizer's rule
    examples = list(tokenize_source(DataSource(data), tok, cache_dir=tmp_path / "cache"))
    assert examples[0]["prompt_ids"][0] == tok.bos_token_id
    model = tiny_llama(seed=1)
    loss = ARLMLoss(model)
    train_batch = ARLMSeq2SeqCollator(pad_token_id=258)(examples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        out = loss.loss_fn(train_batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    assert out["loss"].item() < 0.05

    predictor = ARLMPredictor(model, tok, max_new_tokens=8)
    batch = ARLMSeq2SeqPredictionCollator(pad_token_id=258)(examples)
    preds = predictor.predict(batch)
    exact, accuracy = Seq2SeqExactMatch(), Seq2SeqTokenAccuracy()
    exact.update(preds["ids"], batch["target_ids"])
    accuracy.update(preds["ids"], batch["target_ids"])
    assert preds["text"] == ["ba", "zyx"]
    assert exact.compute() == 1.0 and accuracy.compute() == 1.0
    records = predictor.to_dict(batch, preds)
    assert records[1]["prompt"] == "xyz=" and records[1]["prediction"] == "zyx"
    assert predictor.generate(["ab="]) == ["ba"]


def test_packed_text_trains(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcabcabc\n\nxyxyxyxyxy\n\nabcabc\n\n")
    tokenized = tokenize_source(
        DataSource(corpus, doc_separator="\n\n"), ByteTokenizer(), cache_dir=tmp_path / "cache"
    )
    packed = PackedDataset(tokenized.tokens, tokenized.offsets, seq_len=8, pad_token_id=258)
    loader = torch.utils.data.DataLoader(
        packed, batch_size=len(packed), collate_fn=ARLMPretrainCollator(pad_token_id=258)
    )
    model = tiny_llama()
    loss = ARLMLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mean = MeanLoss()
    for step in range(30):
        for batch in loader:
            out = loss.loss_fn(batch)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            if step == 0:
                mean.update(out["loss_sum"].detach(), out["num_tokens"])
    assert out["loss"].item() < 0.5 * mean.compute()
