"""``to_hf_api`` on real lmhub encoder-decoders (T5, transformer): the wrapper shares the
parameters, its logits and ``generate()`` (greedy and beams, with transformers' encoder-decoder
cache) equal lmhub's own, labels are shifted right for the loss, ``Trainer``-style steps learn,
and ``save_pretrained``/``from_pretrained`` (and the Auto classes) round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.generation import generate_seq2seq

pytest.importorskip("transformers")

from lmhub.hf import register, to_hf_api

FAMILIES = ["t5", "transformer"]
VOCAB = 64


def tiny(family: str) -> Any:
    hub = lmhub.get_model_hub(family)
    overrides = {
        "model_dim": 32, "num_layers": 2, "num_decoder_layers": 2, "ffn_inner_dim": 48,
        "vocab_size": VOCAB, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        "decoder_start_token_id": 0,
    }  # fmt: skip
    config = lmhub.apply_overrides(hub.get_arch_config(f"{family}_tiny"), overrides)
    torch.manual_seed(0)
    return hub.create_new_model(config).eval()


def source() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, VOCAB, (3, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("family", FAMILIES)
def test_wrapper_logits_and_loss(family: str) -> None:
    model = tiny(family)
    hf = to_hf_api(model).eval()
    assert hf.config.is_encoder_decoder and hf.config.decoder_start_token_id == 0
    assert sum(p.numel() for p in hf.parameters()) == sum(p.numel() for p in model.parameters())
    ids, mask = source()
    labels = torch.randint(3, VOCAB, (3, 5), generator=torch.Generator().manual_seed(2))
    labels[2, 3:] = -100
    with torch.no_grad():
        out = hf(input_ids=ids, attention_mask=mask, labels=labels)
        want = model(ids, attention_mask=mask, labels=labels)
    assert torch.equal(out.logits, want)
    scored = labels != -100
    ce = torch.nn.functional.cross_entropy(want[scored], labels[scored])
    assert torch.allclose(out.loss, ce, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_with_beams_equals_lmhub(family: str) -> None:
    model = tiny(family)
    hf = to_hf_api(model).eval()
    ids, mask = source()
    for beams in (1, 3):
        with torch.no_grad():
            got = hf.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=beams,
                do_sample=False, early_stopping=True,
            )  # fmt: skip
        want = generate_seq2seq(
            model, ids, attention_mask=mask, max_new_tokens=6, num_beams=beams,
            early_stopping=True,
        )  # fmt: skip
        assert torch.equal(got, want), beams


@pytest.mark.parametrize("family", FAMILIES)
def test_training_steps_through_the_wrapper_learn(family: str) -> None:
    model = tiny(family).train()
    hf = to_hf_api(model).train()
    ids, mask = source()
    labels = torch.randint(3, VOCAB, (3, 5), generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.AdamW(hf.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = hf(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_from_pretrained_round_trip(family: str, tmp_path: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM

    model = tiny(family)
    hf = to_hf_api(model)
    hf.save_pretrained(tmp_path)
    register()
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded).__name__ == "LmhubForConditionalGeneration"
    ids, mask = source()
    tgt = torch.randint(3, VOCAB, (3, 4), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = loaded(input_ids=ids, attention_mask=mask, decoder_input_ids=tgt).logits
        b = model(ids, attention_mask=mask, decoder_input_ids=tgt)
    assert torch.equal(a, b)
