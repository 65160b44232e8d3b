"""Incremental decoding with a KV cache gives the logits of a full forward pass, for every family.

Each registered family is tested on its ``<family>_tiny`` preset, so a new family is covered as
soon as it registers one (families with ``supports_kv_cache = False`` are checked to generate by
recomputing instead).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lmhub
from lmhub.nn.decode_weights import decode_model
from lmhub.nn.kv_cache import DynamicKVCache, KVCache, StaticKVCache
from lmhub.nn.masks import positions_from_padding

ATOL = 1e-5
# Encoder-decoders decode incrementally in tests/encdec.
FAMILIES = [f for f in lmhub.list_families() if lmhub.get_family(f).kind != "encoder_decoder"]
CACHED_FAMILIES = [
    f for f in FAMILIES if getattr(lmhub.get_family(f).model_class, "supports_kv_cache", False)
]


def tiny_model(family: str) -> nn.Module:
    hub = lmhub.get_model_hub(family)
    torch.manual_seed(0)
    return hub.create_new_model(hub.get_arch_config(f"{family}_tiny")).eval()


def make_cache(kind: str, size: int) -> KVCache:
    return StaticKVCache(size) if kind == "static" else DynamicKVCache()


def run_in_chunks(
    model: nn.Module,
    ids: torch.Tensor,
    chunks: list[int],
    cache: KVCache,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feed ``ids`` in pieces of the given lengths through ``cache``; return all logits."""
    positions = positions_from_padding(mask) if mask is not None else None
    out, start = [], 0
    for n in chunks:
        end = start + n
        kwargs = {}
        if mask is not None:
            kwargs = {"attention_mask": mask[:, :end], "position_ids": positions[:, start:end]}
        out.append(model(ids[:, start:end], cache=cache, **kwargs))
        start = end
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("family", CACHED_FAMILIES)
@pytest.mark.parametrize("cache_kind", ["static", "dynamic"])
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_incremental_logits_match_full_forward(family: str, cache_kind: str, fused: bool) -> None:
    model = tiny_model(family)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    # A prompt, a chunk of several tokens over a filled cache, then single tokens.
    chunks = [5, 3, 1, 1, 1, 1]
    with torch.inference_mode():
        full = model(ids)
        run = decode_model(model) if fused else model
        got = run_in_chunks(run, ids, chunks, make_cache(cache_kind, 12))
    assert got.shape == full.shape
    assert (got - full).abs().max().item() <= ATOL


@pytest.mark.parametrize("family", CACHED_FAMILIES)
def test_incremental_left_padded_batch(family: str) -> None:
    model = tiny_model(family)
    ids = torch.randint(0, model.config.vocab_size, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, :3] = False
    mask[2, :6] = False
    with torch.inference_mode():
        full = model(ids, attention_mask=mask, position_ids=positions_from_padding(mask))
        got = run_in_chunks(decode_model(model), ids, [7, 1, 1, 1], StaticKVCache(10), mask)
    assert (got - full)[mask].abs().max().item() <= ATOL


def test_the_decode_model_leaves_the_model_unchanged() -> None:
    model = tiny_model("llama")
    ids = torch.randint(0, 259, (1, 6))
    types = [type(m) for m in model.modules()]
    with torch.inference_mode():
        before = model(ids)
        fused = decode_model(model)(ids)
        after = model(ids)
    assert [type(m) for m in model.modules()] == types
    assert torch.equal(before, after)
    assert (fused - before).abs().max().item() <= ATOL
    assert set(model.state_dict()) == set(tiny_model("llama").state_dict())
