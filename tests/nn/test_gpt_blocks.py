"""Shared blocks added for GPT-2 and GPT-NeoX: partial RoPE, the parallel residual layer,
learned positions and the default position ids."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmhub.nn.attention import Attention
from lmhub.nn.ffn import MLPFeedForward
from lmhub.nn.positions import LearnedPositionEmbedding, default_positions
from lmhub.nn.rope import RotaryEmbedding, apply_rotary, rotary_dims
from lmhub.nn.transformer import ParallelDecoderLayer, PreNormDecoderLayer


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_partial_rotary_equals_transformers_gpt_neox(fraction: float) -> None:
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    head_dim = 32
    rot = rotary_dims(head_dim, fraction)
    rope = RotaryEmbedding(rot, theta=10_000.0, max_seq_len=64)
    q, k = torch.randn(2, 4, 7, head_dim), torch.randn(2, 2, 7, head_dim)
    cos, sin = rope(torch.arange(3, 10).expand(2, 7), torch.float32)
    got_q, got_k = apply_rotary(q, k, cos, sin)
    want_q, want_k = apply_rotary_pos_emb(q, k, cos, sin)
    assert torch.equal(got_q, want_q) and torch.equal(got_k, want_k)
    # The dimensions beyond the rotated ones carry no position.
    assert torch.equal(got_q[..., rot:], q[..., rot:])
    if rot < head_dim:
        assert not torch.equal(got_q[..., :rot], q[..., :rot])


def test_rotary_dims_truncates_like_transformers() -> None:
    assert [rotary_dims(80, f) for f in (0.25, 0.4, 1.0)] == [20, 32, 80]


def _layer(kind: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return kind(
        attn_norm=nn.LayerNorm(16),
        attn=Attention(16, num_heads=2, num_kv_heads=2, head_dim=8, bias=True),
        ffn_norm=nn.LayerNorm(16),
        ffn=MLPFeedForward(16, 32, activation="gelu"),
    ).eval()


def test_parallel_layer_feeds_both_sublayers_the_same_input() -> None:
    layer = _layer(ParallelDecoderLayer)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        attn = layer.attn(layer.attn_norm(x), is_causal=True)
        want = x + attn + layer.ffn(layer.ffn_norm(x))
        got = layer(x, is_causal=True)
        sequential = _layer(PreNormDecoderLayer)(x, is_causal=True)
    assert torch.allclose(got, want, atol=1e-6)
    assert (got - sequential).abs().max() > 1e-3  # same weights, other wiring


def test_default_positions_count_real_tokens_after_the_cache() -> None:
    ids = torch.zeros(2, 3, dtype=torch.long)
    assert default_positions(ids, None, 4).tolist() == [[4, 5, 6]] * 2
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    assert default_positions(ids, mask, 2).tolist() == [[2, 3, 4], [0, 1, 2]]
    packed = torch.ones(2, 1, 3, 3, dtype=torch.bool)  # a complete mask: plain positions
    assert default_positions(ids, packed, 0).tolist() == [[0, 1, 2]] * 2


def test_learned_positions_look_up_one_vector_per_position() -> None:
    pos = LearnedPositionEmbedding(8, 4)
    out = pos(torch.tensor([[0, 7, 7]]))
    assert out.shape == (1, 3, 4)
    assert torch.equal(out[0, 1], pos.weight[7]) and torch.equal(out[0, 2], out[0, 1])
    assert list(dict(pos.named_parameters())) == ["weight"]  # HF's wpe.weight
