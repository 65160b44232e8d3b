"""The attention knobs Mistral/Qwen2/Qwen3 need, as shared blocks: projection biases, per-head
q/k norms, sliding windows (HF's meaning) and per-layer sliding/full attention with every cache.

transformers is the oracle for the mask semantics and for Qwen3's attention block.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import lmhub
from lmhub.models.llama.config import LlamaConfig
from lmhub.models.llama.model import LlamaModel
from lmhub.nn.attention import ATTN_IMPLS, Attention
from lmhub.nn.kv_cache import DynamicKVCache, KVCache, StaticKVCache
from lmhub.nn.masks import build_attention_mask, causal_mask
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding

ATOL = 1e-5


def hf_window_mask(window: int, q_len: int, kv_len: int) -> torch.Tensor:
    """transformers' sliding-window causal mask for the last ``q_len`` of ``kv_len`` positions."""
    from transformers.masking_utils import sliding_window_causal_mask_function

    q_idx = torch.arange(kv_len - q_len, kv_len)[:, None]
    kv_idx = torch.arange(kv_len)[None, :]
    zero = torch.tensor(0)
    return sliding_window_causal_mask_function(window)(zero, zero, q_idx, kv_idx)


@pytest.mark.parametrize("window", [1, 2, 3, 5, 9])
@pytest.mark.parametrize(("q_len", "kv_len"), [(7, 7), (3, 7), (1, 7)])
def test_sliding_window_mask_is_transformers_one(window: int, q_len: int, kv_len: int) -> None:
    offset = kv_len - q_len  # the queries are the last q_len positions
    want = hf_window_mask(window, q_len, kv_len)
    got = causal_mask(q_len, kv_len, sliding_window=window)
    assert torch.equal(got, want)
    # A window of W covers W positions, the current one included.
    assert got.sum(-1).tolist() == [min(offset + i + 1, window) for i in range(q_len)]


def test_packed_document_mask_is_cut_to_the_window() -> None:
    documents = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    same = documents[:, None] == documents[None, :]
    packed = (same & causal_mask(8, 8))[None, None]
    got = build_attention_mask(q_len=8, kv_len=8, padding_mask=packed, sliding_window=3)
    assert got is not None
    assert torch.equal(got[0, 0], packed[0, 0] & causal_mask(8, 8, sliding_window=3))
    assert torch.equal(build_attention_mask(q_len=8, kv_len=8, padding_mask=packed), packed)


@pytest.mark.parametrize(
    ("bias", "output_bias", "want"),
    [(False, None, False), (True, None, True), (True, False, False), (False, True, True)],
)
def test_output_bias_is_configured_apart_from_qkv_bias(
    bias: bool, output_bias: bool | None, want: bool
) -> None:
    attn = Attention(
        16, num_heads=2, num_kv_heads=1, head_dim=8, bias=bias, output_bias=output_bias
    )
    assert all((p.bias is not None) == bias for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    assert (attn.o_proj.bias is not None) == want


def test_attention_without_qk_norms_keeps_its_state_dict_keys() -> None:
    attn = Attention(16, num_heads=2, num_kv_heads=1, head_dim=8)
    assert attn.q_norm is None and attn.k_norm is None
    assert {k.split(".")[0] for k in attn.state_dict()} == {"q_proj", "k_proj", "v_proj", "o_proj"}


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("window", [None, 3])
def test_qk_norm_attention_matches_transformers_qwen3(attn_impl: str, window: int | None) -> None:
    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention

    config = Qwen3Config(
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        attention_bias=True,
        rms_norm_eps=1e-6,
        use_sliding_window=window is not None,
        sliding_window=window,
        max_window_layers=0,
        num_hidden_layers=1,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    theirs = Qwen3Attention(config, layer_idx=0).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-0.5, 0.5)
    ours = Attention(
        32,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        bias=True,
        attn_impl=attn_impl,
        q_norm=RMSNorm(16, eps=1e-6),
        k_norm=RMSNorm(16, eps=1e-6),
        sliding_window=window,
    ).eval()
    ours.load_state_dict(theirs.state_dict())

    seq = 9
    x = torch.randn(2, seq, 32)
    rope = RotaryEmbedding(16, theta=10_000.0, max_seq_len=64)(
        torch.arange(seq).expand(2, seq), torch.float32
    )
    allowed = causal_mask(seq, seq) if window is None else hf_window_mask(window, seq, seq)
    additive = torch.zeros(seq, seq).masked_fill(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        want, _ = theirs(x, position_embeddings=rope, attention_mask=additive[None, None])
        mask = build_attention_mask(q_len=seq, kv_len=seq, sliding_window=window)
        got = ours(x, rope=rope, mask=mask, is_causal=mask is None)
    assert (got - want).abs().max().item() <= ATOL


# -- per-layer windows through a whole decoder, with every cache ------------------------------


def _mixed_model(attn_impl: str = "sdpa") -> LlamaModel:
    torch.manual_seed(0)
    config = LlamaConfig(
        model_dim=32,
        num_layers=3,
        num_heads=4,
        num_kv_heads=2,
        ffn_inner_dim=48,
        vocab_size=50,
        max_seq_len=64,
        sliding_window=4,
        layer_types=["sliding", "full", "sliding"],
        attn_impl=attn_impl,
    )
    return LlamaModel(config).eval()


def test_layers_get_their_own_windows() -> None:
    model = _mixed_model()
    assert [layer.attn.sliding_window for layer in model.layers] == [4, None, 4]
    assert model.kv_cache_windows == [4, None, 4]
    plain = LlamaModel(
        LlamaConfig(
            model_dim=32,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            ffn_inner_dim=48,
            vocab_size=50,
            max_seq_len=64,
        )
    )
    assert plain.kv_cache_windows is None


def test_a_window_changes_only_what_lies_beyond_it() -> None:
    model = _mixed_model()
    full = LlamaModel(dataclasses.replace(model.config, sliding_window=None, layer_types=None))
    full.eval()
    full.load_state_dict(model.state_dict())
    ids = torch.randint(0, 50, (1, 12))
    with torch.no_grad():
        a, b = model(ids), full(ids)
    assert (a[:, :4] - b[:, :4]).abs().max().item() <= ATOL  # inside the window: the same
    assert (a[:, 4:] - b[:, 4:]).abs().max().item() > 1e-3


def _decode(
    model: LlamaModel, ids: torch.Tensor, mask: torch.Tensor, cache: KVCache, chunks: list[int]
) -> torch.Tensor:
    outs, start = [], 0
    for n in chunks:
        end = start + n
        outs.append(model(ids[:, start:end], attention_mask=mask[:, :end], cache=cache))
        start = end
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("cache_kind", ["dynamic", "static"])
def test_incremental_decoding_with_windows_equals_the_full_forward(
    attn_impl: str, cache_kind: str
) -> None:
    model = _mixed_model(attn_impl)
    ids = torch.randint(0, 50, (2, 14))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    chunks = [6, 3, 1, 1, 1, 1, 1]  # a prompt longer than the window, then a chunk, then steps
    cache: Any
    if cache_kind == "static":
        cache = StaticKVCache(14, sliding_windows=model.kv_cache_windows)
    else:
        cache = DynamicKVCache()
    with torch.no_grad():
        want = model(ids, attention_mask=mask)
        got = _decode(model, ids, mask, cache, chunks)
    if cache_kind == "static":  # sliding layers kept only a window-sized ring
        assert [cache._keys[i].shape[2] for i in range(3)] == [4, 14, 4]
    real = mask.bool()
    assert (got - want)[real].abs().max().item() <= ATOL


def test_generate_uses_ring_buffers_for_sliding_layers() -> None:
    model = _mixed_model()
    ids = torch.randint(0, 50, (1, 6))
    static = lmhub.generate(model, ids, max_new_tokens=10)
    assert torch.equal(static, lmhub.generate(model, ids, max_new_tokens=10, cache=None))
