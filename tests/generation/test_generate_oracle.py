"""Greedy lmhub.generate against transformers' generate(do_sample=False), token for token.

A tiny random LlamaForCausalLM is saved and loaded by lmhub (same weights); both generate
greedily, one prompt and a left-padded batch, with and without EOS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from tests.oracle.hf_models import save_tiny_hf_llama

VOCAB = 160
CASES: dict[str, dict[str, Any]] = {
    "gqa": {},
    "mqa": {"num_key_value_heads": 1},
    "mha": {"num_key_value_heads": 4, "attention_bias": True},
    "llama3": {
        "rope_parameters": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
            "rope_theta": 500000.0,
        }
    },
    "dynamic": {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}},
}


def load_pair(directory: Path, **overrides: Any) -> tuple[Any, Any]:
    hf = save_tiny_hf_llama(directory, **overrides)
    hf.generation_config.eos_token_id = None  # nothing stops early unless a test asks
    return hf, lmhub.load_model(directory).eval()


def hf_generate(hf: Any, ids: torch.Tensor, mask: torch.Tensor | None, new: int, **kw: Any) -> Any:
    with torch.no_grad():
        return hf.generate(
            ids,
            attention_mask=mask if mask is not None else torch.ones_like(ids),
            max_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            **kw,
        )


def left_padded(prompts: list[torch.Tensor], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    return ids, mask


@pytest.mark.parametrize("case", list(CASES))
def test_greedy_matches_transformers(tmp_path: Path, case: str) -> None:
    hf, model = load_pair(tmp_path, **CASES[case])
    # The dynamic case runs past max_position_embeddings (64), where its scaling kicks in.
    prompt_len, new = (50, 24) if case == "dynamic" else (7, 16)
    ids = torch.randint(0, VOCAB, (1, prompt_len))
    want = hf_generate(hf, ids, None, new)
    got = lmhub.generate(model, ids, max_new_tokens=new)
    assert torch.equal(got, want)


@pytest.mark.parametrize("case", ["gqa", "mqa", "llama3"])
def test_left_padded_batch_matches_transformers_and_single_prompts(
    tmp_path: Path, case: str
) -> None:
    hf, model = load_pair(tmp_path, **CASES[case])
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (5, 9, 2)]
    ids, mask = left_padded(prompts)
    want = hf_generate(hf, ids, mask, 12)
    got = lmhub.generate(model, ids, attention_mask=mask, max_new_tokens=12)
    assert torch.equal(got, want)
    for row, prompt in enumerate(prompts):
        alone = lmhub.generate(model, prompt[None], max_new_tokens=12)
        assert torch.equal(got[row, ids.shape[1] :], alone[0, len(prompt) :])


@pytest.mark.parametrize("cache", ["static", "dynamic", None])
@pytest.mark.parametrize("fused", [True, False])
def test_every_cache_kind_and_weight_layout_agree(
    tmp_path: Path, cache: str | None, fused: bool
) -> None:
    hf, model = load_pair(tmp_path)
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (6, 3)]
    ids, mask = left_padded(prompts)
    want = hf_generate(hf, ids, mask, 10)
    got = lmhub.generate(
        model, ids, attention_mask=mask, max_new_tokens=10, cache=cache, fused_weights=fused
    )
    assert torch.equal(got, want)


def test_eos_stops_rows_and_pads_like_transformers(tmp_path: Path) -> None:
    hf, model = load_pair(tmp_path)
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (4, 8, 6)]
    ids, mask = left_padded(prompts)
    free = lmhub.generate(model, ids, attention_mask=mask, max_new_tokens=20)
    eos = int(free[0, ids.shape[1] + 3])  # a token row 0 produces early
    want = hf_generate(hf, ids, mask, 20, eos_token_id=eos)
    got = lmhub.generate(
        model, ids, attention_mask=mask, max_new_tokens=20, eos_token_id=eos, pad_token_id=0
    )
    assert torch.equal(got, want)
    new = got[:, ids.shape[1] :]
    first = int((new[0] == eos).nonzero()[0])
    assert first <= 3 and bool((new[0, first + 1 :] == 0).all())
