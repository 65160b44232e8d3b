"""Gated DeltaNet against transformers' torch reference (Qwen3.5): the chunked and recurrent
delta rules on random inputs, the whole layer on copied weights, and the carried cache state
(prefill then token-by-token decoding equals one pass over the whole sequence)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lmhub.nn.gated_deltanet import (
    GatedDeltaNet,
    chunked_gated_delta_rule,
    recurrent_gated_delta_rule,
)
from lmhub.nn.kv_cache import DynamicKVCache, StaticKVCache

ATOL = 1e-5


def inputs(
    seq: int, *, batch: int = 2, qk_heads: int = 2, v_heads: int = 4, dk: int = 8, dv: int = 6
) -> tuple[torch.Tensor, ...]:
    q = torch.randn(batch, seq, qk_heads, dk)
    k = torch.randn(batch, seq, qk_heads, dk)
    v = torch.randn(batch, seq, v_heads, dv)
    g = -torch.rand(batch, seq, v_heads) * 2  # log-decay in (-2, 0]
    beta = torch.rand(batch, seq, v_heads)
    return q, k, v, g, beta


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def hf_module() -> Any:
    pytest.importorskip("transformers")
    from transformers.models.qwen3_5 import modeling_qwen3_5

    return modeling_qwen3_5


@pytest.mark.parametrize("seq", [1, 5, 16, 37])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_rule_matches_transformers(seq: int, with_state: bool) -> None:
    hf = hf_module()
    torch.manual_seed(seq)
    q, k, v, g, beta = inputs(seq)
    state = torch.randn(2, 4, 8, 6) if with_state else None
    got, got_state = chunked_gated_delta_rule(q, k, v, g, beta, state, chunk_size=8)
    want, want_state = hf.torch_chunk_gated_delta_rule(
        q,
        k,
        v,
        g=g,
        beta=beta,
        chunk_size=8,
        initial_state=state,
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )
    assert max_diff(got, want) <= ATOL
    assert max_diff(got_state, want_state) <= ATOL


@pytest.mark.parametrize("seq", [1, 7])
def test_recurrent_rule_matches_transformers(seq: int) -> None:
    hf = hf_module()
    torch.manual_seed(seq)
    q, k, v, g, beta = inputs(seq)
    state = torch.randn(2, 4, 8, 6)
    got, got_state = recurrent_gated_delta_rule(q, k, v, g, beta, state)
    want, want_state = hf.torch_recurrent_gated_delta_rule(
        q,
        k,
        v,
        g=g,
        beta=beta,
        initial_state=state,
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )
    assert max_diff(got, want) <= ATOL
    assert max_diff(got_state, want_state) <= ATOL


def test_chunked_and_recurrent_rules_agree_whatever_the_chunk_size() -> None:
    torch.manual_seed(0)
    q, k, v, g, beta = inputs(29)
    want, want_state = recurrent_gated_delta_rule(q, k, v, g, beta)
    for chunk in (1, 4, 64):
        got, got_state = chunked_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk)
        assert max_diff(got, want) <= ATOL
        assert max_diff(got_state, want_state) <= ATOL


def test_the_rule_is_causal_and_the_decay_forgets() -> None:
    torch.manual_seed(1)
    q, k, v, g, beta = inputs(12)
    out, _ = chunked_gated_delta_rule(q, k, v, g, beta, chunk_size=4)
    v2 = v.clone()
    v2[:, 8:] += 1.0  # change the future only
    out2, _ = chunked_gated_delta_rule(q, k, v2, g, beta, chunk_size=4)
    assert max_diff(out[:, :8], out2[:, :8]) == 0.0
    assert max_diff(out[:, 8:], out2[:, 8:]) > 1e-3
    # With full decay (g = -inf) nothing survives a step: each output reads its own write.
    alone, _ = recurrent_gated_delta_rule(q, k, v, torch.full_like(g, -torch.inf), beta)
    first, _ = recurrent_gated_delta_rule(q[:, 5:6], k[:, 5:6], v[:, 5:6], g[:, 5:6], beta[:, 5:6])
    assert max_diff(alone[:, 5:6], first) <= ATOL


def hf_layer_pair(**overrides: Any) -> tuple[Any, GatedDeltaNet]:
    hf = hf_module()
    from transformers import Qwen3_5TextConfig

    fields = dict(
        hidden_size=32,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=8,
        linear_value_head_dim=6,
        linear_conv_kernel_dim=4,
        num_hidden_layers=1,
        layer_types=["linear_attention"],
    )
    config = Qwen3_5TextConfig(**{**fields, **overrides})
    torch.manual_seed(0)
    ref = hf.Qwen3_5GatedDeltaNet(config, 0).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    ours = GatedDeltaNet(
        32,
        num_k_heads=2,
        num_v_heads=4,
        k_head_dim=8,
        v_head_dim=6,
        conv_kernel=4,
        norm_eps=config.rms_norm_eps,
        chunk_size=8,
    ).eval()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def test_the_layer_matches_transformers_on_the_same_weights() -> None:
    ref, ours = hf_layer_pair()
    x = torch.randn(2, 19, 32)
    with torch.no_grad():
        assert max_diff(ours(x), ref(x)) <= ATOL
        mask = torch.ones(2, 19, dtype=torch.long)
        mask[1, :4] = 0  # left padding: padded positions write nothing
        got, want = ours(x, mask=mask), ref(x, attention_mask=mask)
        assert max_diff(got, want) <= ATOL
        # The padded row equals that sequence alone.
        alone = ours(x[1:, 4:])
        assert max_diff(got[1:, 4:], alone) <= ATOL


@pytest.mark.parametrize("cache_class", [DynamicKVCache, StaticKVCache])
def test_prefill_then_decode_equals_one_pass(cache_class: type) -> None:
    _, ours = hf_layer_pair()
    x = torch.randn(2, 14, 32)
    cache = cache_class() if cache_class is DynamicKVCache else cache_class(16)
    with torch.no_grad():
        full = ours(x)
        parts = [ours(x[:, :9], cache=cache)]
        cache.advance(9)
        for t in range(9, 14):
            parts.append(ours(x[:, t : t + 1], cache=cache))
            cache.advance(1)
    assert max_diff(torch.cat(parts, dim=1), full) <= ATOL
    state = cache.layer_states[0]
    assert state["conv"].shape == (2, 2 * 16 + 24, 3)  # the last kernel - 1 inputs
    assert state["recurrent"].shape == (2, 4, 8, 6)  # one k_dim x v_dim matrix per value head
