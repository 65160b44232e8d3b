"""The checks the oracle tests share, each against a tiny random transformers model of the same
weights: loading the pair, logits with left padding, greedy generation (one prompt, then a
left-padded batch) and an exact export round trip."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import lmhub
import lmhub.hf
from lmhub.nn.masks import positions_from_padding
from tests.generation.test_generate_oracle import hf_generate, left_padded
from tests.oracle.hf_models import save_tiny_hf

ATOL = 1e-5
"""fp32 logits: the largest absolute difference allowed."""

GENERATION_SETTINGS = pytest.mark.parametrize(
    ("cache", "fused"), [("static", True), ("static", False), ("dynamic", False), (None, False)]
)
"""Parametrises a greedy-generation test over each KV cache (``cache``) and, with the static
one, the fused and unfused projections (``fused``)."""


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def load_tiny_pair(
    directory: Path, model_type: str, *, lmhub_config: dict[str, Any] | None = None, **hf: Any
) -> tuple[Any, Any]:
    """Save a tiny random transformers model of ``model_type`` to ``directory`` (``hf`` goes to
    :func:`~tests.oracle.hf_models.save_tiny_hf`), with an end-of-sequence id that never stops
    its greedy generation early; return it and lmhub's load of ``directory`` (both eval), with
    ``lmhub_config`` overriding the checkpoint's config."""
    model = save_tiny_hf(directory, model_type, **hf)
    model.generation_config.eos_token_id = None  # nothing stops early
    return model, lmhub.load_model(directory, config=lmhub_config or None).eval()


def match_hf_kernel(hf: Any, attn_impl: str) -> None:
    """Run ``hf`` on lmhub's kernel ``attn_impl``; lmhub's flex is checked against transformers'
    eager."""
    hf.set_attn_implementation("eager" if attn_impl == "flex" else attn_impl)


def assert_logits_match(
    hf: Any, model: Any, *, vocab: int, seq: int, hf_positions_skip_padding: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits equal transformers' on two rows, the second left-padded by 5; return the ids and
    lmhub's logits under the padding mask.

    transformers' forward counts positions from 0 at the first column, its generate (and lmhub
    by default) from the first real token; with ``hf_positions_skip_padding`` transformers is
    given the latter, which models with absolute positions (GPT-2) need."""
    ids = torch.randint(0, vocab, (2, seq))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    positions = positions_from_padding(mask) if hf_positions_skip_padding else None
    with torch.no_grad():
        assert max_diff(model(ids), hf(ids).logits) <= ATOL
        got = model(ids, attention_mask=mask)
        want = hf(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert max_diff(got[real], want[real]) <= ATOL
    return ids, got


def assert_generates_like(
    hf: Any,
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    new_tokens: int,
    **generate_kw: Any,
) -> torch.Tensor:
    """lmhub's greedy continuation of ``ids`` (``generate_kw`` goes to :func:`lmhub.generate`)
    equals transformers', token for token; return it."""
    want = hf_generate(hf, ids, mask, new_tokens)
    got = lmhub.generate(model, ids, attention_mask=mask, max_new_tokens=new_tokens, **generate_kw)
    assert torch.equal(got, want)
    return got


def ring_buffer_lengths(window: int) -> dict[str, Any]:
    """:func:`assert_greedy_generation_matches`'s lengths for sliding layers of ``window``: the
    prompts longer than the window, and new tokens that wrap the ring buffers twice."""
    return dict(
        prompt_len=window + 3, new_tokens=2 * window + 1, batch_lens=(window + 4, 3, window)
    )


def assert_greedy_generation_matches(
    hf: Any,
    model: Any,
    *,
    vocab: int,
    cache: str | None,
    fused: bool | None = None,
    prompt_len: int = 9,
    new_tokens: int = 12,
    batch_lens: Sequence[int] = (10, 3, 6),
    batch_new_tokens: int = 8,
    prompt_tries: int = 1,
) -> None:
    """Greedy tokens equal transformers' (with ``cache`` and ``fused_weights=fused``) for one
    prompt of ``prompt_len`` and for a left-padded batch of prompts of ``batch_lens``.

    The one prompt's ``new_tokens`` must hold three distinct tokens or more, so that equal
    outputs say something; up to ``prompt_tries`` random prompts are drawn to find one on which
    transformers' do (random tiny models often repeat one token over and over)."""
    kw: dict[str, Any] = {"cache": cache, "fused_weights": fused}
    for _ in range(prompt_tries):
        ids = torch.randint(0, vocab, (1, prompt_len))
        want = hf_generate(hf, ids, None, new_tokens)
        if len(want[0, prompt_len:].unique()) >= 3:  # not one token over and over
            break
    else:
        pytest.fail("transformers' greedy output repeats one or two tokens for every prompt")
    got = lmhub.generate(model, ids, max_new_tokens=new_tokens, **kw)
    assert torch.equal(got, want)

    prompts = [torch.randint(1, vocab, (n,)) for n in batch_lens]
    ids, mask = left_padded(prompts)
    assert_generates_like(hf, model, ids, mask, batch_new_tokens, **kw)


def assert_export_matches_checkpoint(
    model: Any, hf_dir: Path, out_dir: Path, *, model_type: str, dropped: Sequence[str] = ()
) -> dict[str, Any]:
    """lmhub's export of ``model`` (loaded from ``hf_dir``) to ``out_dir`` names ``model_type``
    and holds exactly the checkpoint's tensors under the same names (tied heads left out alike),
    but for the checkpoint's ``dropped`` ones (which must be there); return the exported
    config."""
    lmhub.hf.export(model, out_dir)
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model_type"] == model_type

    original = load_file(hf_dir / "model.safetensors")
    exported = load_file(out_dir / "model.safetensors")
    for key in dropped:
        del original[key]
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)
    return config


def assert_export_round_trips(
    hf: Any,
    model: Any,
    directory: Path,
    *,
    model_type: str,
    config_keys: Sequence[str],
    vocab: int,
    seq: int = 12,
    missing_as_none: bool = False,
) -> Any:
    """lmhub's export of ``model`` (loaded from ``directory / "hf"``) to ``directory / "out"``
    holds the same tensors under the same names (:func:`assert_export_matches_checkpoint`);
    transformers loads it natively, with the
    same ``config_keys`` (one a config lacks reads as ``None`` where ``missing_as_none``) and
    the same logits on two rows of ``seq`` (``model``'s within ``ATOL``); return the model
    transformers loads from it."""
    from transformers import AutoModelForCausalLM

    out_dir = directory / "out"
    assert_export_matches_checkpoint(model, directory / "hf", out_dir, model_type=model_type)

    back = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    assert type(back) is type(hf)
    for key in config_keys:
        if missing_as_none:
            assert getattr(back.config, key, None) == getattr(hf.config, key, None), key
        else:
            assert getattr(back.config, key) == getattr(hf.config, key), key
    ids = torch.randint(0, vocab, (2, seq))
    with torch.no_grad():
        assert max_diff(back(ids).logits, hf(ids).logits) == 0.0
        assert max_diff(model(ids), back(ids).logits) <= ATOL
    return back


def assert_loads_like(
    hf: Any, directory: Path, *, vocab: int, shape: tuple[int, int] = (1, 10), **load: Any
) -> Any:
    """lmhub's load of ``directory`` (``load`` goes to :func:`lmhub.load_model`) gives ``hf``'s
    logits, within ``ATOL``, on random ids of ``shape``; return it (eval)."""
    model = lmhub.load_model(directory, **load).eval()
    ids = torch.randint(0, vocab, shape)
    with torch.no_grad():
        assert max_diff(model(ids), hf(ids).logits) <= ATOL
    return model


def save_multimodal_layout(
    text_dir: Path,
    out_dir: Path,
    *,
    text_model_type: str,
    config: dict[str, Any],
    extra_tensors: dict[str, torch.Tensor],
) -> None:
    """Rewrite the text model saved in ``text_dir`` in a published multimodal checkpoint's
    layout in ``out_dir``: its ``model.`` keys under ``model.language_model.``, the other parts'
    ``extra_tensors`` beside them, and the outer ``config`` holding ``text_dir``'s as
    ``text_config`` (of ``text_model_type``)."""
    text_config = json.loads((text_dir / "config.json").read_text())
    tensors = load_file(text_dir / "model.safetensors")
    renamed = {
        k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k: v
        for k, v in tensors.items()
    }
    out_dir.mkdir()
    save_file(
        {**renamed, **extra_tensors}, out_dir / "model.safetensors", metadata={"format": "pt"}
    )
    config = {**config, "text_config": {**text_config, "model_type": text_model_type}}
    (out_dir / "config.json").write_text(json.dumps(config))
