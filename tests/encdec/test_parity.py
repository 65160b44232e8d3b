"""Parity of lmhub's encoder-decoders with transformers on tiny random checkpoints: T5
(``T5ForConditionalGeneration``, tied and untied heads) and the transformer family as M2M100
(``M2M100ForConditionalGeneration``). Decoder logits for given decoder inputs, fp32 <= 1e-5,
with and without source and target padding, on both attention kernels; incremental decoding
with the encoder-decoder cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.models.registry import family_of
from lmhub.nn.encdec_cache import EncoderDecoderCache
from tests.encdec.hf_seq2seq import PAD, random_ids, save_tiny_seq2seq

pytest.importorskip("transformers")

ATOL = 1e-5
CASES = [
    pytest.param("t5", {}, id="t5-tied"),
    pytest.param("t5", {"untied": True}, id="t5-untied"),
    pytest.param("t5", {"scale_decoder_outputs": True}, id="t5-tied-scaled"),
    pytest.param("m2m_100", {}, id="m2m_100"),
    pytest.param(
        "m2m_100", {"scale_embedding": False, "activation_function": "gelu"}, id="m2m-gelu"
    ),
]


def pair(
    tmp_path: Path, model_type: str, options: dict[str, Any], **config: Any
) -> tuple[Any, Any]:
    hf = save_tiny_seq2seq(tmp_path, model_type, **options)
    ours = lmhub.load_model(tmp_path, config=config or None, progress=False).eval()
    return hf, ours


def padded_source(model_type: str, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ids = random_ids(model_type, 3, 9)
    mask = torch.ones_like(ids)
    for row, n in ((1, 3), (2, 6)):
        cols = slice(0, n) if left else slice(9 - n, 9)
        mask[row, cols] = 0
        ids[row, cols] = PAD[model_type]
    return ids, mask


@pytest.mark.parametrize("attn_impl", ["sdpa", "eager"])
@pytest.mark.parametrize(("model_type", "options"), CASES)
def test_decoder_logits_match_transformers(
    model_type: str, options: dict[str, Any], attn_impl: str, tmp_path: Path
) -> None:
    hf, ours = pair(tmp_path, model_type, options, attn_impl=attn_impl)
    family = "t5" if model_type == "t5" else "transformer"
    assert family_of(ours).name == family
    tgt = random_ids(model_type, 3, 6, seed=1)
    with torch.no_grad():
        for left in (False, True):
            src, mask = padded_source(model_type, left=left)
            want = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
            got = ours(src, decoder_input_ids=tgt, attention_mask=mask)
            assert (got - want).abs().max().item() <= ATOL
            enc_want = hf.get_encoder()(input_ids=src, attention_mask=mask).last_hidden_state
            enc_got = ours.encode(src, attention_mask=mask)
            real = mask.bool()
            assert (enc_got - enc_want)[real].abs().max().item() <= ATOL
        src = random_ids(model_type, 3, 9)
        want = hf(input_ids=src, decoder_input_ids=tgt).logits
        assert (ours(src, decoder_input_ids=tgt) - want).abs().max().item() <= ATOL


@pytest.mark.parametrize("model_type", ["t5", "m2m_100"])
def test_right_padded_targets_match_transformers(model_type: str, tmp_path: Path) -> None:
    hf, ours = pair(tmp_path, model_type, {})
    src, src_mask = padded_source(model_type, left=False)
    tgt = random_ids(model_type, 3, 7, seed=2)
    tgt_mask = torch.ones_like(tgt)
    tgt_mask[0, 4:] = 0
    tgt_mask[2, 2:] = 0
    tgt[~tgt_mask.bool()] = PAD[model_type]
    with torch.no_grad():
        want = hf(
            input_ids=src,
            attention_mask=src_mask,
            decoder_input_ids=tgt,
            decoder_attention_mask=tgt_mask,
        ).logits
        got = ours(
            src, decoder_input_ids=tgt, attention_mask=src_mask, decoder_attention_mask=tgt_mask
        )
    real = tgt_mask.bool()
    assert (got - want)[real].abs().max().item() <= ATOL


@pytest.mark.parametrize("model_type", ["t5", "m2m_100"])
def test_labels_are_shifted_right_as_transformers_does(model_type: str, tmp_path: Path) -> None:
    hf, ours = pair(tmp_path, model_type, {})
    src = random_ids(model_type, 2, 8)
    labels = random_ids(model_type, 2, 5, seed=3)
    labels[1, 3:] = -100
    with torch.no_grad():
        want = hf(input_ids=src, labels=labels).logits
        got = ours(src, labels=labels)
    # Where a label is ignored, M2M100 places the padding it reads at no position; the loss
    # never reads those logits.
    scored = labels != -100
    assert (got - want)[scored].abs().max().item() <= ATOL


@pytest.mark.parametrize("model_type", ["t5", "m2m_100"])
def test_cached_decoding_equals_the_full_forward(model_type: str, tmp_path: Path) -> None:
    _, ours = pair(tmp_path, model_type, {})
    src, mask = padded_source(model_type, left=False)
    tgt = random_ids(model_type, 3, 8, seed=4)
    with torch.no_grad():
        memory = ours.encode(src, attention_mask=mask)
        full = ours.decode(tgt, memory, memory_mask=mask)
        cache = EncoderDecoderCache()
        steps = [ours.decode(tgt[:, :3], memory, memory_mask=mask, cache=cache)]
        cross = dict(cache._cross)
        for t in range(3, 8):
            steps.append(ours.decode(tgt[:, t : t + 1], memory, memory_mask=mask, cache=cache))
    assert cache.seq_len == 8
    # The cross-attention keys/values were projected once and reused, not recomputed.
    assert all(cache._cross[i][0] is k for i, (k, _) in cross.items())
    assert (torch.cat(steps, dim=1) - full).abs().max().item() <= ATOL
