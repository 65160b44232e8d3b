"""The checks the newer families' oracle tests share: logits with left padding, greedy
generation (one prompt, then a left-padded batch) and an exact export round trip, each against
a tiny random transformers model of the same weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

import lmhub
import lmhub.hf
from tests.generation.test_generate_oracle import hf_generate, left_padded

ATOL = 1e-5
"""fp32 logits: the largest absolute difference allowed."""


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def assert_logits_match(hf: Any, model: Any, *, vocab: int, seq: int) -> None:
    """Logits equal transformers' on two rows, the second left-padded by 5."""
    ids = torch.randint(0, vocab, (2, seq))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    with torch.no_grad():
        assert max_diff(model(ids), hf(ids).logits) <= ATOL
        got, want = model(ids, attention_mask=mask), hf(ids, attention_mask=mask).logits
    real = mask.bool()
    assert max_diff(got[real], want[real]) <= ATOL


def assert_greedy_generation_matches(
    hf: Any, model: Any, *, vocab: int, cache: str | None, fused: bool
) -> None:
    """Greedy tokens equal transformers' for one prompt and for a left-padded batch."""
    kw: dict[str, Any] = {"cache": cache, "fused_weights": fused}
    ids = torch.randint(0, vocab, (1, 9))
    want = hf_generate(hf, ids, None, 12)
    got = lmhub.generate(model, ids, max_new_tokens=12, **kw)
    assert torch.equal(got, want)
    assert len(got[0, ids.shape[1] :].unique()) >= 3  # not one token over and over

    prompts = [torch.randint(1, vocab, (n,)) for n in (10, 3, 6)]
    ids, mask = left_padded(prompts)
    want = hf_generate(hf, ids, mask, 8)
    got = lmhub.generate(model, ids, attention_mask=mask, max_new_tokens=8, **kw)
    assert torch.equal(got, want)


def assert_export_round_trips(
    hf: Any,
    model: Any,
    hf_dir: Path,
    out_dir: Path,
    *,
    model_type: str,
    config_keys: Sequence[str],
    vocab: int,
) -> Any:
    """lmhub's export of ``model`` (loaded from ``hf_dir``) holds the same tensors under the same
    names, the same ``config_keys`` and the same logits (``model``'s within ``ATOL``); return
    the model transformers loads from it."""
    from transformers import AutoModelForCausalLM

    lmhub.hf.export(model, out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model_type"] == model_type

    original = load_file(hf_dir / "model.safetensors")
    exported = load_file(out_dir / "model.safetensors")
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)

    back = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    assert type(back) is type(hf)
    for key in config_keys:
        assert getattr(back.config, key) == getattr(hf.config, key), key
    ids = torch.randint(0, vocab, (2, 12))
    with torch.no_grad():
        assert max_diff(back(ids).logits, hf(ids).logits) == 0.0
        assert max_diff(model(ids), back(ids).logits) <= ATOL
    return back
