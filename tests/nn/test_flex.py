"""Flex attention: each mask and score function against the eager reference, and the errors
for what flex cannot do. (The family parity matrix runs every model under "flex" too.)"""

from __future__ import annotations

import pytest
import torch

import lmhub.nn.attention as attention
from lmhub.errors import ConfigError
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.alibi import AlibiBias
from lmhub.nn.attention import Attention, check_attn_impl, scaled_dot_product_attention
from lmhub.nn.flex import FLEX_AVAILABLE, flex_scaled_dot_product_attention
from lmhub.nn.masks import build_attention_mask, causal_mask

pytestmark = pytest.mark.skipif(not FLEX_AVAILABLE, reason="this PyTorch has no flex attention")

ATOL = 1e-6


def qkv(batch: int = 2, heads: int = 3, q_len: int = 7, kv_len: int = 7) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, heads, n, 8) * 2 for n in (q_len, kv_len, kv_len)]


def both(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: object) -> float:
    """The largest difference between the flex and the eager result of the same call."""
    flex = scaled_dot_product_attention(q, k, v, impl="flex", **kw)  # type: ignore[arg-type]
    eager = scaled_dot_product_attention(q, k, v, impl="eager", **kw)  # type: ignore[arg-type]
    return (flex - eager).abs().max().item()


@pytest.mark.parametrize(("q_len", "kv_len"), [(7, 7), (3, 7), (1, 7)])
def test_causal_flex_aligns_the_queries_with_the_last_keys(q_len: int, kv_len: int) -> None:
    q, k, v = qkv(q_len=q_len, kv_len=kv_len)
    assert both(q, k, v, is_causal=True) <= ATOL
    # Not the top-left mask: with q_len < kv_len that would hide keys the queries may see.
    top_left = torch.ones(q_len, kv_len, dtype=torch.bool).tril()
    other = scaled_dot_product_attention(q, k, v, mask=top_left, impl="eager")
    if q_len < kv_len:
        flex = scaled_dot_product_attention(q, k, v, is_causal=True, impl="flex")
        assert (flex - other).abs().max() > 1e-3


@pytest.mark.parametrize(("q_len", "window"), [(9, 3), (4, 2), (9, 1)])
def test_sliding_window_mask_mod_equals_the_dense_window_mask(q_len: int, window: int) -> None:
    q, k, v = qkv(q_len=q_len, kv_len=9)
    got = flex_scaled_dot_product_attention(q, k, v, is_causal=True, sliding_window=window)
    dense = causal_mask(q_len, 9, sliding_window=window)
    want = scaled_dot_product_attention(q, k, v, mask=dense, impl="eager")
    assert (got - want).abs().max() <= ATOL
    full = flex_scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (got - full).abs().max() > 1e-3


def test_padding_masks_per_row_and_shared_masks_match_eager() -> None:
    q, k, v = qkv(q_len=4, kv_len=9)
    padding = torch.ones(2, 9, dtype=torch.bool)
    padding[1, :4] = False  # the second row is left-padded
    per_row = build_attention_mask(q_len=4, kv_len=9, padding_mask=padding, sliding_window=3)
    assert per_row is not None and per_row.shape[0] == 2
    assert both(q, k, v, mask=per_row) <= ATOL
    shared = build_attention_mask(q_len=4, kv_len=9, sliding_window=3)
    assert shared is not None and shared.shape[0] == 1
    assert both(q, k, v, mask=shared) <= ATOL


def test_softcap_and_alibi_bias_are_score_mods_in_eager_order() -> None:
    q, k, v = qkv(q_len=5, kv_len=8)
    bias = AlibiBias(3)(q_len=5, kv_len=8)
    assert both(q, k, v, is_causal=True, softcap=2.0, scale=0.4) <= ATOL
    assert both(q, k, v, is_causal=True, bias=bias) <= ATOL
    assert both(q, k, v, is_causal=True, bias=bias, softcap=2.0) <= ATOL
    per_row = bias.expand(2, -1, -1, -1).clone()
    per_row[1] *= 3
    assert both(q, k, v, mask=causal_mask(5, 8)[None, None], bias=per_row) <= ATOL


def test_flex_attention_module_gives_eager_outputs() -> None:
    torch.manual_seed(0)
    flex = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8, attn_impl="flex", softcap=3.0)
    eager = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8, attn_impl="eager", softcap=3.0)
    eager.load_state_dict(flex.state_dict())
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        assert (flex(x, is_causal=True) - eager(x, is_causal=True)).abs().max() <= ATOL


def test_flex_on_cpu_with_gradients_is_a_clear_error() -> None:
    # PyTorch's flex attention has no CPU backward; say so before its NotImplementedError.
    attn = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8, attn_impl="flex")
    with pytest.raises(ConfigError, match=r"no backward pass on CPU.*torch\.no_grad"):
        attn(torch.randn(1, 4, 32), is_causal=True)


def test_flex_refuses_attention_dropout() -> None:
    q, k, v = qkv()
    with pytest.raises(ConfigError, match="no attention dropout") as info:
        scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.1, impl="flex")
    assert info.value.field == "attn_impl"


def test_flex_without_flex_attention_is_a_clear_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attention, "ATTN_IMPLS", ("eager", "sdpa"))
    with pytest.raises(ConfigError, match=r"no torch\.nn\.attention\.flex_attention") as info:
        LlamaConfig(attn_impl="flex").validate()
    assert (info.value.field, info.value.value) == ("attn_impl", "flex")
    q, k, v = qkv()
    with pytest.raises(ConfigError, match=r"PyTorch 2\.5"):
        scaled_dot_product_attention(q, k, v, is_causal=True, impl="flex")


def test_unknown_attention_implementations_name_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'flash'.*eager, sdpa, flex"):
        check_attn_impl("flash")
    check_attn_impl("flex")
