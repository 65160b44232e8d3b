"""Gemma's shared blocks against transformers and their definitions: the (1 + w) RMSNorm,
soft-capping, attention with a custom scale and a softcap, and sandwich norms."""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.nn.attention import ATTN_IMPLS, Attention, scaled_dot_product_attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.softcap import softcap
from lmhub.nn.transformer import PreNormDecoderLayer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_unit_offset_rmsnorm_equals_transformers_gemma(dtype: torch.dtype) -> None:
    from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm

    torch.manual_seed(0)
    ours, theirs = RMSNorm(48, eps=1e-6, unit_offset=True), Gemma2RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        theirs.weight.uniform_(-0.5, 0.5)
        ours.weight.copy_(theirs.weight)
    ours, theirs = ours.to(dtype), theirs.to(dtype)
    x = (torch.randn(3, 5, 48) * 4).to(dtype)
    # The scale is applied in float32 before the cast, so low precision matches bit for bit.
    assert torch.equal(ours(x), theirs(x))


def test_unit_offset_rmsnorm_starts_as_the_identity_scale() -> None:
    norm = RMSNorm(16, unit_offset=True)
    assert not norm.weight.any()
    x = torch.randn(2, 16)
    assert torch.allclose(norm(x), RMSNorm(16)(x))
    assert "unit_offset=True" in repr(norm)


def test_softcap_is_bounded_odd_and_near_identity_for_small_values() -> None:
    x = torch.linspace(-1e4, 1e4, 1001)
    y = softcap(x, 30.0)
    assert y.abs().max() <= 30.0
    assert torch.equal(softcap(-x, 30.0), -y)
    small = torch.tensor([1e-3, -2e-3])
    assert torch.allclose(softcap(small, 30.0), small, rtol=1e-6)


@pytest.mark.parametrize("impl", ATTN_IMPLS)
def test_softcapped_attention_caps_the_scaled_scores(impl: str) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8) * 3 for _ in range(3))
    scale, cap = 0.3, 2.0
    got = scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, softcap=cap, impl=impl)
    scores = cap * torch.tanh(q @ k.transpose(-1, -2) * scale / cap)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    want = scores.masked_fill(~causal, -math.inf).softmax(-1) @ v
    assert torch.allclose(got, want, atol=1e-6)
    uncapped = scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, impl=impl)
    assert (got - uncapped).abs().max() > 1e-3


def test_attention_scale_replaces_the_head_width_default() -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=2, num_kv_heads=1, head_dim=16, scale=24**-0.5)
    plain = Attention(32, num_heads=2, num_kv_heads=1, head_dim=16)
    plain.load_state_dict(attn.state_dict())
    x = torch.randn(1, 6, 32)
    with torch.no_grad():
        assert (attn(x, is_causal=True) - plain(x, is_causal=True)).abs().max() > 1e-4
        # Scaling the queries by the ratio of the two scales undoes the difference.
        plain.q_proj.weight.mul_(24**-0.5 / 16**-0.5)
        assert torch.allclose(attn(x, is_causal=True), plain(x, is_causal=True), atol=1e-6)


def test_sandwich_norms_norm_each_sublayer_output() -> None:
    torch.manual_seed(0)

    def layer(post: bool) -> PreNormDecoderLayer:
        return PreNormDecoderLayer(
            attn_norm=RMSNorm(32),
            attn=Attention(32, num_heads=2, num_kv_heads=2, head_dim=16),
            ffn_norm=RMSNorm(32),
            ffn=GLUFeedForward(32, 64, activation="gelu_tanh"),
            attn_post_norm=RMSNorm(32) if post else None,
            ffn_post_norm=RMSNorm(32) if post else None,
        )

    sandwich, plain = layer(True), layer(False)
    assert {"attn_post_norm.weight", "ffn_post_norm.weight"} <= set(sandwich.state_dict())
    assert not any("post" in k for k in plain.state_dict())
    plain.load_state_dict(sandwich.state_dict(), strict=False)
    x = torch.randn(1, 4, 32)
    with torch.no_grad():
        a = sandwich.attn(sandwich.attn_norm(x), is_causal=True)
        h = x + sandwich.attn_post_norm(a)
        want = h + sandwich.ffn_post_norm(sandwich.ffn(sandwich.ffn_norm(h)))
        assert torch.allclose(sandwich(x, is_causal=True), want)
        assert (plain(x, is_causal=True) - want).abs().max() > 1e-3
