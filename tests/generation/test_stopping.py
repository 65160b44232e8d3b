"""Stopping (EOS, stop sequences and strings), padding, streaming, recompute-only models."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

import lmhub
from lmhub.data.tokenizers import ByteTokenizer
from lmhub.errors import GenerationError
from lmhub.generation import StopCriteria
from lmhub.generation.stopping import normalize_stop
from lmhub.models.llama.model import LlamaModel


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    hub = lmhub.get_model_hub("llama")
    torch.manual_seed(0)
    return hub.create_new_model(hub.get_arch_config("llama_tiny")).eval()


def test_normalize_stop() -> None:
    assert normalize_stop(None) == ([], [])
    assert normalize_stop("###") == (["###"], [])
    assert normalize_stop([5, 6]) == ([], [[5, 6]])
    assert normalize_stop(["a", [1], (2, 3)]) == (["a"], [[1], [2, 3]])
    with pytest.raises(GenerationError, match="empty"):
        normalize_stop([""])
    with pytest.raises(GenerationError, match="neither a string"):
        normalize_stop([1.5])  # type: ignore[list-item]


def test_stop_criteria_per_row() -> None:
    stopper = StopCriteria(eos_token_id=[2, 9], stop=[[5, 6]], batch_size=3)
    assert stopper.update(torch.tensor([5, 9, 1])).tolist() == [False, True, False]
    assert stopper.update(torch.tensor([6, 0, 5])).tolist() == [True, True, False]
    assert stopper.update(torch.tensor([0, 0, 2])).tolist() == [True, True, True]


def test_stop_strings_span_tokens_and_need_a_tokenizer() -> None:
    tok = ByteTokenizer()
    stopper = StopCriteria(stop="</a>", tokenizer=tok, batch_size=1)
    flags = [bool(stopper.update(torch.tensor([b]))) for b in b"x</a"]
    assert flags == [False, False, False, False]
    assert bool(stopper.update(torch.tensor([ord(">")])))
    with pytest.raises(GenerationError, match="need a tokenizer"):
        StopCriteria(stop="</a>", batch_size=1)


def test_eos_rows_are_padded_and_the_loop_ends_early(model: LlamaModel) -> None:
    ids = torch.randint(0, 256, (2, 4))
    free = lmhub.generate(model, ids, max_new_tokens=12)
    eos = int(free[0, 7])
    assert eos not in free[1].tolist()  # (the seed fixes the outputs) row 1 never stops
    got = lmhub.generate(model, ids, max_new_tokens=12, eos_token_id=eos)
    assert got.shape == (2, 16) and torch.equal(got[1], free[1])
    new = got[0, 4:]
    first = int((new == eos).nonzero()[0])
    # Row 0 stops at its first EOS and gets the config's pad id (258) after it.
    assert torch.equal(new[: first + 1], free[0, 4 : 4 + first + 1])
    assert bool((new[first + 1 :] == model.config.pad_token_id).all()) and first < 11
    # When every row has stopped, the loop ends.
    first_tokens = [int(free[0, 4]), int(free[1, 4])]
    stops_at_once = lmhub.generate(model, ids, max_new_tokens=12, eos_token_id=first_tokens)
    assert torch.equal(stops_at_once, free[:, :5])


def test_stop_sequences_and_strings_end_generation(model: LlamaModel) -> None:
    tok = ByteTokenizer()
    ids = torch.tensor([tok.encode("Hello")])
    free = lmhub.generate(model, ids, max_new_tokens=10)
    new = free[0, 5:].tolist()
    assert max(new) < 128  # ASCII, so one token is one character (the seed fixes the output)
    seq = new[4:6]
    end = next(i for i in range(len(new)) if new[i - 1 : i + 1] == seq) + 1
    got = lmhub.generate(model, ids, max_new_tokens=10, stop=[seq])
    assert torch.equal(got, free[:, : 5 + end])
    text = tok.decode(new)
    by_string = lmhub.generate(model, ids, max_new_tokens=10, stop=text[4:6], tokenizer=tok)
    assert torch.equal(by_string, free[:, : 5 + text.index(text[4:6]) + 2])


def test_stream_yields_what_generate_returns(model: LlamaModel) -> None:
    ids = torch.randint(0, 256, (2, 3))
    steps = list(lmhub.generate_stream(model, ids, max_new_tokens=6))
    assert len(steps) == 6 and all(s.shape == (2,) for s in steps)
    whole = lmhub.generate(model, ids, max_new_tokens=6)
    assert torch.equal(torch.stack(steps, dim=1), whole[:, 3:])
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


class _NoCacheLlama(LlamaModel):
    supports_kv_cache: ClassVar[bool] = False
    calls: ClassVar[list[int]] = []

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        assert kwargs.get("cache") is None
        type(self).calls.append(input_ids.shape[1])
        return super().forward(input_ids, **kwargs)


def test_models_without_kv_cache_generate_by_recomputing(model: LlamaModel) -> None:
    other = _NoCacheLlama(model.config)
    other.load_state_dict(model.state_dict())
    other.eval()
    ids = torch.randint(0, 256, (1, 4))
    got = lmhub.generate(other, ids, max_new_tokens=5)
    assert torch.equal(got, lmhub.generate(model, ids, max_new_tokens=5))
    assert _NoCacheLlama.calls == [4, 5, 6, 7, 8]


def test_zero_new_tokens_and_bad_inputs(model: LlamaModel) -> None:
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(lmhub.generate(model, ids, max_new_tokens=0), ids)
    with pytest.raises(GenerationError, match=r"\[batch, prompt\]"):
        lmhub.generate(model, torch.tensor([1, 2]), max_new_tokens=2)
    with pytest.raises(GenerationError, match="attention_mask has shape"):
        lmhub.generate(model, ids, max_new_tokens=2, attention_mask=torch.ones(1, 2))
