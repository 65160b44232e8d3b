"""ALiBi: slopes against the published formula, bias values, and attention with the bias."""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.nn.alibi import AlibiAttention, AlibiBias, alibi_bias, alibi_slopes
from lmhub.nn.attention import scaled_dot_product_attention
from lmhub.nn.kv_cache import DynamicKVCache


def published_slopes(n: int) -> list[float]:
    """The slope rule as the ALiBi paper's reference code states it (Press et al., 2022)."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + published_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("num_heads", [1, 2, 4, 6, 8, 12, 16, 24, 32])
def test_slopes_match_the_published_formula(num_heads: int) -> None:
    assert alibi_slopes(num_heads) == pytest.approx(published_slopes(num_heads), rel=1e-12)


def test_slopes_of_8_and_12_heads() -> None:
    eight = [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(8) == pytest.approx(eight, rel=1e-12)
    # 12 heads: the 8-head slopes, then every other slope of 16 heads (2^-0.5, 2^-1.5, ...).
    extra = [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    assert alibi_slopes(12) == pytest.approx(eight + extra, rel=1e-12)


def test_slopes_reject_zero_heads() -> None:
    with pytest.raises(ValueError, match="positive"):
        alibi_slopes(0)


def test_bias_values_on_a_small_example() -> None:
    bias = alibi_bias(torch.tensor([0.5, 0.25]), q_len=3, kv_len=3)
    distance = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, -1.0], [-2.0, -1.0, 0.0]])
    torch.testing.assert_close(bias, torch.stack([0.5 * distance, 0.25 * distance]))
    # Keys are penalised by their distance on both sides (bidirectional attention sees the
    # future ones; a causal mask removes them), never rewarded.
    assert (bias <= 0).all()
    torch.testing.assert_close(bias, bias.transpose(-1, -2))


def test_bias_with_cached_positions_is_the_last_rows() -> None:
    slopes = torch.tensor(alibi_slopes(4))
    full = alibi_bias(slopes, q_len=7, kv_len=7)
    last = alibi_bias(slopes, q_len=2, kv_len=7)
    torch.testing.assert_close(last, full[:, -2:])
    torch.testing.assert_close(
        alibi_bias(torch.tensor([1.0]), q_len=1, kv_len=4)[0, 0], torch.tensor([-3.0, -2, -1, 0])
    )


def test_module_shape_grad_and_reset() -> None:
    alibi = AlibiBias(8)
    torch.testing.assert_close(alibi.slopes.detach(), torch.tensor(alibi_slopes(8)))
    bias = alibi(q_len=2, kv_len=5)
    assert bias.shape == (1, 8, 2, 5)
    bias.sum().backward()
    assert alibi.slopes.grad is not None and alibi.slopes.grad.abs().sum() > 0
    with torch.no_grad():
        alibi.slopes.fill_(3.0)
    alibi.reset_parameters()
    torch.testing.assert_close(alibi.slopes.detach(), torch.tensor(alibi_slopes(8)))


def test_module_fixed_and_custom_slopes() -> None:
    fixed = AlibiBias(2, trainable=False, init_slopes=[0.5, 0.1])
    assert not fixed.slopes.requires_grad
    torch.testing.assert_close(fixed.slopes.detach(), torch.tensor([0.5, 0.1]))
    with pytest.raises(ValueError, match="2 heads"):
        AlibiBias(2, init_slopes=[0.5])


def test_module_builds_on_meta_and_materialises() -> None:
    with torch.device("meta"):
        alibi = AlibiBias(12)
    assert alibi.slopes.is_meta
    alibi.to_empty(device="cpu")
    alibi.reset_parameters()
    torch.testing.assert_close(alibi.slopes.detach(), torch.tensor(alibi_slopes(12)))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_attention_with_bias_matches_a_manual_softmax(impl: str) -> None:
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    bias = AlibiBias(4)(6, 6)
    got = scaled_dot_product_attention(q, k, v, bias=bias, is_causal=True, impl=impl)
    scores = q @ k.transpose(-1, -2) / math.sqrt(8) + bias
    scores = scores.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    want = torch.softmax(scores, dim=-1) @ v
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_alibi_attention_with_a_cache_equals_the_full_pass() -> None:
    attn = AlibiAttention(32, num_heads=4, num_kv_heads=2, head_dim=8).eval()
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        full = attn(x, is_causal=True)
        cache = DynamicKVCache()
        steps = [attn(x[:, :4], is_causal=True, cache=cache)]
        cache.advance(4)
        for t in range(4, 7):
            steps.append(attn(x[:, t : t + 1], cache=cache))
            cache.advance(1)
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5
    assert [n for n, _ in attn.named_parameters()][-1] == "alibi.slopes"
