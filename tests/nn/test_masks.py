"""`lmhub.nn.masks.causal_mask`: the one bottom-right-aligned causal mask, against its definition
and against PyTorch's own causal attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.nn.attention import scaled_dot_product_attention
from lmhub.nn.masks import build_attention_mask, causal_mask


@st.composite
def lengths(draw: st.DrawFn) -> tuple[int, int]:
    q_len = draw(st.integers(1, 9))
    return q_len, draw(st.integers(q_len, 14))


@settings(max_examples=60, deadline=None)
@given(lengths(), st.none() | st.integers(1, 16))
def test_query_i_sees_keys_up_to_i_plus_the_cached_length(
    sizes: tuple[int, int], window: int | None
) -> None:
    q_len, kv_len = sizes
    mask = causal_mask(q_len, kv_len, sliding_window=window)
    assert mask.shape == (q_len, kv_len) and mask.dtype == torch.bool
    for i in range(q_len):
        for j in range(kv_len):
            visible = j <= i + (kv_len - q_len)
            if window is not None:
                visible = visible and j > i + (kv_len - q_len) - window
            assert bool(mask[i, j]) == visible, (i, j)
    # build_attention_mask is the same mask, with batch and head axes.
    built = build_attention_mask(q_len=q_len, kv_len=kv_len, sliding_window=window)
    if built is not None:
        assert torch.equal(built[0, 0], mask)
    else:
        assert q_len == kv_len and window is None


def test_square_mask_is_what_sdpa_is_causal_applies() -> None:
    torch.manual_seed(0)
    for n in (1, 2, 5, 16):
        q, k, v = (torch.randn(2, 3, n, 8) for _ in range(3))
        theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        ours = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(n, n))
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
        assert torch.equal(causal_mask(n, n), torch.ones(n, n, dtype=torch.bool).tril())


def test_cached_queries_attend_like_the_last_rows_of_full_causal_attention() -> None:
    # Bottom-right alignment: the last q_len queries over all kv_len keys give what the full
    # sequence gives at those rows. SDPA's own is_causal (top-left) would not.
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 9, 8) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for q_len in (1, 3, 9):
        tail = q[:, :, -q_len:]
        ours = F.scaled_dot_product_attention(tail, k, v, attn_mask=causal_mask(q_len, 9))
        torch.testing.assert_close(ours, full[:, :, -q_len:], rtol=0, atol=1e-6)
        for impl in ("eager", "sdpa"):  # lmhub's kernel wrapper builds the same mask itself
            got = scaled_dot_product_attention(tail, k, v, is_causal=True, impl=impl)
            torch.testing.assert_close(got, full[:, :, -q_len:], rtol=0, atol=1e-5)
    top_left = F.scaled_dot_product_attention(q[:, :, -3:], k, v, is_causal=True)
    assert not torch.allclose(top_left, full[:, :, -3:])


def test_a_bidirectional_window_reaches_both_ways() -> None:
    mask = build_attention_mask(q_len=5, kv_len=5, causal=False, sliding_window=2)
    assert mask is not None
    expected = torch.tensor(
        [[abs(i - j) < 2 for j in range(5)] for i in range(5)], dtype=torch.bool
    )
    assert torch.equal(mask[0, 0], expected)
    # The ring-buffer path (absolute key positions) agrees.
    ring = build_attention_mask(
        q_len=5, kv_len=5, causal=False, sliding_window=2, key_positions=torch.arange(5)
    )
    assert ring is not None and torch.equal(ring[0, 0], expected)
