"""Packing: every token once, in order, with positions restarting and attention kept inside each
document; in every decoder family the packed loss equals the loss of each document run alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.data.packing import PackedDataset, document_mask
from lmhub.lm.arlm import ARLMLoss, ARLMPretrainCollator
from lmhub.nn.masks import causal_mask
from tests.lm.models import tiny_model

PAD = -7


def offsets_of(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=8),
    st.integers(1, 16),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_every_token_once_and_boundaries_respected(
    lengths: list[int], seq_len: int, rng: object, drop_last: bool
) -> None:
    offsets = offsets_of(lengths)
    tokens = np.arange(offsets[-1])  # a token's value is its index: it says where it came from
    documents = list(range(len(lengths)))
    rng.shuffle(documents)  # type: ignore[attr-defined]
    packed = PackedDataset(
        tokens,
        offsets,
        seq_len=seq_len,
        pad_token_id=PAD,
        documents=documents,
        drop_last=drop_last,
    )
    rows = [packed[i] for i in range(len(packed))]
    stream = np.concatenate([tokens[offsets[d] : offsets[d + 1]] for d in documents])
    seen = np.concatenate([r["input_ids"][r["input_ids"] != PAD] for r in rows] or [[]])
    kept = len(stream) - (len(stream) % seq_len if drop_last else 0)
    assert seen.tolist() == stream[:kept].tolist()  # every token once, in the packed order
    for row in rows:
        ids, pos, doc = row["input_ids"], row["position_ids"], row["document_ids"]
        assert ids.shape == pos.shape == doc.shape == (seq_len,)
        real = ids != PAD
        assert (doc[~real] == -1).all() and (pos[~real] == 0).all()
        source = np.searchsorted(offsets, ids[real], side="right") - 1  # original document
        for j in range(int(real.sum())):
            new_doc = j == 0 or source[j] != source[j - 1]
            assert pos[j] == (0 if new_doc else pos[j - 1] + 1)
            assert doc[j] == (0 if j == 0 else doc[j - 1] + int(new_doc))
    if rows:  # collated, a loss is taken on every real token but a document's first
        batch = ARLMPretrainCollator(pad_token_id=PAD)(rows)
        real = torch.from_numpy(np.stack([r["document_ids"] for r in rows]) >= 0)
        starts = torch.from_numpy(np.stack([r["position_ids"] for r in rows]) == 0)
        assert torch.equal(batch["attention_mask"].bool(), real)
        assert torch.equal(batch["labels"] != -100, real & ~starts)


def test_document_mask_stays_within_documents() -> None:
    doc = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 0, 0, 0, 0, 0]])
    mask = document_mask(doc)
    assert mask.shape == (2, 1, 6, 6)
    assert torch.equal(mask[1, 0], causal_mask(6, 6))  # one document: the plain causal mask
    both_ways = document_mask(doc, causal=False)
    for i in range(6):
        for j in range(6):
            same = bool(doc[0, i] == doc[0, j])
            assert bool(mask[0, 0, i, j]) == (j <= i and same)
            assert bool(both_ways[0, 0, i, j]) == same


@pytest.mark.parametrize("family", ["llama", "deepone", "causal_lm", "single_head"])
def test_packed_loss_equals_each_document_alone(family: str) -> None:
    torch.manual_seed(0)
    lengths = [5, 11, 1, 7, 9, 3]  # rows of 8: documents span rows, one is a single token
    offsets = offsets_of(lengths)
    tokens = torch.randint(0, 256, (int(offsets[-1]),)).numpy()
    packed = PackedDataset(tokens, offsets, seq_len=8, pad_token_id=258)
    batch = ARLMPretrainCollator(pad_token_id=258)([packed[i] for i in range(len(packed))])
    model = tiny_model(family).double()  # float64: equal up to rounding, whatever the family
    loss = ARLMLoss(model, chunk_size=5)
    out = loss.loss_fn(batch)

    # Each (row, document) piece run alone, with default positions and the plain causal mask.
    sums, count, seen = torch.zeros((), dtype=torch.float64), 0, 0
    hidden = loss.hidden_states(batch)
    for r in range(len(packed)):
        doc = batch["document_ids"][r]
        for d in doc.unique():
            if d < 0:
                continue
            piece = batch["input_ids"][r][doc == d][None]
            seen += piece.shape[1]
            alone = model(piece, return_hidden=True)[0]
            torch.testing.assert_close(hidden[r][doc == d], alone, rtol=1e-10, atol=1e-10)
            logits = model.logits(alone)
            sums += F.cross_entropy(logits[:-1], piece[0, 1:], reduction="sum")
            count += piece.shape[1] - 1
    assert seen == len(tokens) and int(out["num_tokens"]) == count
    torch.testing.assert_close(out["loss"], sums / count, rtol=1e-12, atol=1e-12)
