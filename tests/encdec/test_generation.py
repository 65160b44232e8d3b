"""Seq2seq generation against transformers' ``generate()`` on tiny random T5 and M2M100
checkpoints: greedy and beam search, token for token, batched with source padding, with the
encoder-decoder cache; and the checks on bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import GenerationError
from lmhub.generation import generate_seq2seq
from tests.encdec.hf_seq2seq import EOS, PAD, random_ids, save_tiny_seq2seq

pytest.importorskip("transformers")

MODEL_TYPES = ["t5", "m2m_100"]


def models(tmp_path: Path, model_type: str) -> tuple[Any, Any]:
    # transformers' T5 sizes its generation cache by the encoder's layer count: keep them equal.
    extra = {"num_decoder_layers": 2} if model_type == "t5" else {}
    # Small biases: large ones swamp the tiny M2M100's tokens and it repeats one token.
    hf = save_tiny_seq2seq(
        tmp_path, model_type, untied=model_type == "t5", bias_scale=0.05, **extra
    )
    return hf, lmhub.load_model(tmp_path, progress=False).eval()


def nudge_eos(hf: Any, ours: Any, model_type: str, *, beams: bool = False) -> None:
    """Shift both heads' EOS row alike so that rows end at different steps (the tiny random
    models rarely pick EOS on their own); the amounts were found by trying."""
    eos = EOS[model_type]
    with torch.no_grad():
        for m in (hf.lm_head, ours.lm_head):
            if model_type == "m2m_100":
                m.weight[eos] -= 1.0
            elif beams:
                m.weight[eos] += 0.015 * torch.linspace(-1, 1, m.weight.shape[1])
            else:
                m.weight[eos] += 0.5 * m.weight[54]  # a token the model likes to repeat


def padded_batch(model_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = random_ids(model_type, 4, 10, seed=5)
    mask = torch.ones_like(ids)
    for row, n in ((1, 4), (3, 7)):
        mask[row, 10 - n :] = 0
        ids[row, 10 - n :] = PAD[model_type]
    return ids, mask


def hf_generate(hf: Any, ids: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    with torch.no_grad():
        return hf.generate(
            input_ids=ids, attention_mask=mask, do_sample=False, use_cache=True, **kwargs
        )


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_greedy_equals_transformers(model_type: str, tmp_path: Path) -> None:
    hf, ours = models(tmp_path, model_type)
    ids, mask = padded_batch(model_type)
    want = hf_generate(hf, ids, mask, max_new_tokens=12, num_beams=1)
    got = lmhub.generate(ours, ids, attention_mask=mask, max_new_tokens=12)
    assert torch.equal(got, want)
    # Each row alone gives its row of the padded batch.
    for row in range(ids.shape[0]):
        real = ids[row][mask[row].bool()][None]
        alone = lmhub.generate(ours, real, max_new_tokens=12)
        assert torch.equal(alone[0], got[row, : alone.shape[1]])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_greedy_stops_at_eos_like_transformers(model_type: str, tmp_path: Path) -> None:
    hf, ours = models(tmp_path, model_type)
    nudge_eos(hf, ours, model_type)
    ids, mask = padded_batch(model_type)
    want = hf_generate(hf, ids, mask, max_new_tokens=15, num_beams=1)
    got = generate_seq2seq(ours, ids, attention_mask=mask, max_new_tokens=15)
    assert torch.equal(got, want)
    ended = (got[:, 1:] == EOS[model_type]).any(dim=1)
    assert ended.any() and not ended.all()  # some rows stop early, others run on


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_beam_search_equals_transformers(
    model_type: str, early_stopping: bool, tmp_path: Path
) -> None:
    hf, ours = models(tmp_path, model_type)
    nudge_eos(hf, ours, model_type, beams=True)
    ids, mask = padded_batch(model_type)
    greedy = generate_seq2seq(ours, ids, attention_mask=mask, max_new_tokens=10)
    for beams, penalty in ((3, 1.0), (4, 0.6)):
        want = hf_generate(
            hf, ids, mask, max_new_tokens=10, num_beams=beams, length_penalty=penalty,
            early_stopping=early_stopping,
        )  # fmt: skip
        got = generate_seq2seq(
            ours, ids, attention_mask=mask, max_new_tokens=10, num_beams=beams,
            length_penalty=penalty, early_stopping=early_stopping,
        )  # fmt: skip
        assert torch.equal(got, want), (beams, penalty)
        assert not torch.equal(got, greedy[:, : got.shape[1]])  # the beams found other tokens


def test_sampling_is_reproducible_with_a_generator(tmp_path: Path) -> None:
    _, ours = models(tmp_path, "t5")
    ids, mask = padded_batch("t5")

    def sample(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return lmhub.generate(
            ours, ids, attention_mask=mask, max_new_tokens=8, temperature=1.0, generator=g
        )

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 4, "num_beams": 0}, "num_beams"),
        ({"max_new_tokens": 4, "num_beams": 2, "temperature": 0.7}, "num_beams"),
        ({"max_new_tokens": 4, "attention_mask": torch.ones(1, 3)}, "attention_mask"),
    ],
)
def test_bad_settings_name_the_argument(kwargs: dict[str, Any], field: str) -> None:
    hub = lmhub.get_model_hub("t5")
    model = hub.create_new_model(hub.get_arch_config("t5_tiny")).eval()
    with pytest.raises(GenerationError, match=field) as info:
        generate_seq2seq(model, torch.tensor([[5, 6, 7, 8]]), **kwargs)
    assert info.value.field == field
    with pytest.raises(GenerationError, match="vocabulary"):
        generate_seq2seq(model, torch.tensor([[5, 999]]), max_new_tokens=2)
    with pytest.raises(GenerationError, match="stop"):
        lmhub.generate(model, torch.tensor([[5, 6]]), max_new_tokens=2, stop=["x"])


def test_streaming_yields_the_greedy_tokens_and_the_cli_prints_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lmhub.cli.main import main

    _, ours = models(tmp_path, "t5")
    ids, mask = padded_batch("t5")
    steps = list(lmhub.generate_stream(ours, ids, attention_mask=mask, max_new_tokens=7))
    full = lmhub.generate(ours, ids, attention_mask=mask, max_new_tokens=7)
    assert torch.equal(torch.stack(steps, dim=1), full[:, 1:])
    assert torch.is_inference_mode_enabled() is False
    code = main(["generate", "t5_tiny", "--prompt", "12345", "--max-new-tokens", "4"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"\b[1-4] tokens in", err)  # at most --max-new-tokens, fewer after EOS
