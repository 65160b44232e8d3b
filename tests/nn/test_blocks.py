"""The shared blocks against transformers' Llama pieces and against each other."""

from __future__ import annotations

import pytest
import torch

from lmhub.nn.attention import Attention, repeat_kv, scaled_dot_product_attention
from lmhub.nn.ffn import GLUFeedForward, MLPFeedForward
from lmhub.nn.kv_cache import DynamicKVCache
from lmhub.nn.masks import build_attention_mask, positions_from_padding
from lmhub.nn.norm import RMSNorm


def test_rmsnorm_matches_transformers() -> None:
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours, theirs = RMSNorm(32, eps=1e-6), LlamaRMSNorm(32, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        theirs.weight.copy_(ours.weight)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(2, 5, 32, dtype=dtype)
        torch.testing.assert_close(ours.to(dtype)(x), theirs.to(dtype)(x), rtol=0, atol=0)


def test_swiglu_matches_transformers_mlp() -> None:
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    theirs = LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=40, num_attention_heads=2))
    ours = GLUFeedForward(16, 40)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_mlp_feed_forward_shapes() -> None:
    assert MLPFeedForward(8, 32)(torch.randn(2, 8)).shape == (2, 8)


@pytest.mark.parametrize("num_kv_heads", [4, 2, 1])
def test_eager_and_sdpa_agree(num_kv_heads: int) -> None:
    attn = Attention(32, num_heads=4, num_kv_heads=num_kv_heads, head_dim=8)
    x = torch.randn(2, 7, 32)
    mask = build_attention_mask(
        q_len=7, kv_len=7, padding_mask=torch.tensor([[0, 0, 1, 1, 1, 1, 1]] * 2)
    )
    outs = []
    for impl in ("eager", "sdpa"):
        attn.attn_impl = impl
        outs.append((attn(x, is_causal=True), attn(x, mask=mask)))
    for a, b in zip(*outs):
        assert (a - b).abs().max() <= 1e-6


def test_alibi_style_bias_with_causal_agrees_across_impls() -> None:
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    bias = torch.randn(1, 2, 5, 5)
    eager = scaled_dot_product_attention(q, k, v, bias=bias, is_causal=True, impl="eager")
    sdpa = scaled_dot_product_attention(q, k, v, bias=bias, is_causal=True, impl="sdpa")
    assert (eager - sdpa).abs().max() <= 1e-6


def test_repeat_kv() -> None:
    x = torch.arange(12.0).view(1, 2, 3, 2)
    out = repeat_kv(x, 3)
    assert out.shape == (1, 6, 3, 2)
    assert torch.equal(out[0, 0], out[0, 2]) and torch.equal(out[0, 3], x[0, 1])


def test_masks() -> None:
    assert build_attention_mask(q_len=4, kv_len=4) is None
    m = build_attention_mask(q_len=2, kv_len=4)
    assert m.tolist() == [[[[True, True, True, False], [True, True, True, True]]]]
    w = build_attention_mask(q_len=4, kv_len=4, sliding_window=2)
    assert w[0, 0].sum(-1).tolist() == [1, 2, 2, 2]
    pad = build_attention_mask(q_len=3, kv_len=3, padding_mask=torch.tensor([[0, 1, 1]]))
    # The padding query row sees everything (finite softmax); real rows never see padding.
    assert pad[0, 0].tolist() == [[True, True, True], [False, True, False], [False, True, True]]
    assert positions_from_padding(torch.tensor([[0, 0, 1, 1]])).tolist() == [[0, 0, 0, 1]]
    with pytest.raises(ValueError, match="cached and the new"):
        build_attention_mask(q_len=1, kv_len=3, padding_mask=torch.ones(1, 2))


def test_dynamic_cache_incremental_equals_full() -> None:
    attn = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8).eval()
    x = torch.randn(1, 6, 32)
    full = attn(x, is_causal=True)
    cache = DynamicKVCache()
    first = attn(x[:, :4], is_causal=True, cache=cache)
    cache.advance(4)
    step = attn(x[:, 4:], mask=build_attention_mask(q_len=2, kv_len=6), cache=cache)
    assert (torch.cat([first, step], 1) - full).abs().max() <= 1e-6
