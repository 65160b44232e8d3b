"""The shared blocks Gemma 4 added to ``lmhub.nn``, each on its own: per-layer embeddings, KV
sharing and keys-as-values in :class:`Attention`, value norms, the normed router with
per-expert scales (against transformers' ``Gemma4TextRouter``), the dense-beside-MoE
feed-forward, and the per-layer input and layer scalar of :class:`PreNormDecoderLayer`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmhub.errors import ForwardInputError
from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.kv_cache import DynamicKVCache
from lmhub.nn.moe import DenseMoEFeedForward, MoeConfig, MoEFeedForward, Router
from lmhub.nn.norm import RMSNorm
from lmhub.nn.per_layer_embeddings import PerLayerEmbeddings, PerLayerInputGate
from lmhub.nn.transformer import PreNormDecoderLayer


def test_per_layer_embeddings_follow_the_reference_formula() -> None:
    torch.manual_seed(0)
    ple = PerLayerEmbeddings(50, model_dim=32, num_layers=3, dim=4, eps=1e-6)
    with torch.no_grad():
        ple.norm.weight.uniform_(0.5, 1.5)
    ids, embeds = torch.randint(0, 50, (2, 5)), torch.randn(2, 5, 32)
    tokens = (ple.embed(ids) * 2.0).view(2, 5, 3, 4)  # sqrt(4)
    projected = (ple.projection(embeds) * 32**-0.5).view(2, 5, 3, 4)
    rms = projected.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt()
    want = (projected * rms * ple.norm.weight + tokens) * 2**-0.5
    torch.testing.assert_close(ple(ids, embeds), want)


def test_per_layer_input_gate_adds_a_normed_gated_signal() -> None:
    gate = PerLayerInputGate(16, 4, activation="gelu_tanh")
    h, signal = torch.randn(1, 3, 16), torch.randn(1, 3, 4)
    inner = torch.nn.functional.gelu(gate.gate(h), approximate="tanh") * signal
    torch.testing.assert_close(gate(h, signal), h + gate.norm(gate.projection(inner)))


def _attn(**kw: object) -> Attention:
    return Attention(32, num_heads=4, num_kv_heads=2, head_dim=8, attn_impl="eager", **kw)  # type: ignore[arg-type]


def test_a_kv_sharing_layer_attends_over_its_source_layers_keys_and_values() -> None:
    torch.manual_seed(0)
    source, shared = _attn(layer_idx=0), _attn(layer_idx=1, kv_from=0)
    assert shared.k_proj is None and shared.v_proj is None and shared.k_norm is None
    x, y = torch.randn(2, 6, 32), torch.randn(2, 6, 32)
    store: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    source(x, is_causal=True, kv_store=store)
    got = shared(y, is_causal=True, kv_store=store)
    # The same as a layer with the source's k/v projections run on the source's input.
    reference = _attn(layer_idx=1)
    reference.load_state_dict({**source.state_dict(), **shared.state_dict()})
    q = reference.q_proj(y).view(2, 6, 4, 8).transpose(1, 2)
    k, v = store[0]
    probs = torch.softmax(
        (q @ k.repeat_interleave(2, 1).transpose(-1, -2) / 8**0.5).masked_fill(
            ~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf")
        ),
        dim=-1,
    )
    out = (probs @ v.repeat_interleave(2, 1)).transpose(1, 2).reshape(2, 6, 32)
    torch.testing.assert_close(got, reference.o_proj(out))


def test_a_kv_sharing_layer_writes_nothing_to_the_cache() -> None:
    source, shared = _attn(layer_idx=0), _attn(layer_idx=1, kv_from=0)
    cache, store = DynamicKVCache(), {}
    x = torch.randn(1, 4, 32)
    source(x, is_causal=True, cache=cache, kv_store=store)
    shared(x, is_causal=True, cache=cache, kv_store=store)
    assert set(cache._keys) == {0}


def test_a_kv_sharing_layer_without_its_store_says_what_to_pass() -> None:
    with pytest.raises(ForwardInputError, match="kv_store"):
        _attn(layer_idx=1, kv_from=0)(torch.randn(1, 2, 32))


def test_keys_as_values_take_the_raw_key_projection_through_the_value_norm() -> None:
    attn = _attn(v_from_k=True, v_norm=RMSNorm(8, elementwise_affine=False))
    assert attn.v_proj is None
    x = torch.randn(1, 3, 32)
    _, _, v = attn.project_qkv(x)
    raw = attn.k_proj(x).view(1, 3, 2, 8).transpose(1, 2)
    torch.testing.assert_close(v, raw * raw.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt())


def test_the_normed_router_with_per_expert_scales_matches_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.models.gemma4.modeling_gemma4 import Gemma4TextRouter

    torch.manual_seed(0)
    config = transformers.Gemma4TextConfig(
        hidden_size=32, num_experts=8, top_k_experts=3, rms_norm_eps=1e-6
    )
    theirs = Gemma4TextRouter(config)
    ours = Router(
        32,
        MoeConfig(num_experts=8, top_k=3, router_norm_eps=1e-6, per_expert_scale=True),
    )
    with torch.no_grad():
        theirs.proj.weight.normal_()
        theirs.scale.uniform_(0.5, 1.5)
        theirs.per_expert_scale.uniform_(0.5, 1.5)
        ours.weight.copy_(theirs.proj.weight)
        ours.scale.copy_(theirs.scale)  # type: ignore[union-attr]
        ours.per_expert_scale.copy_(theirs.per_expert_scale)  # type: ignore[union-attr]
    x = torch.randn(20, 32) * 3
    _, want_w, want_i = theirs(x)
    _, got_w, got_i = ours(x)
    assert torch.equal(got_i, want_i)
    torch.testing.assert_close(got_w, want_w)


def test_dense_beside_moe_sums_both_normed_branches() -> None:
    torch.manual_seed(0)
    moe_config = MoeConfig(num_experts=4, top_k=2, expert_inner_dim=8)
    norms = [RMSNorm(16) for _ in range(4)]
    moe = MoEFeedForward(16, moe_config, input_norm=norms[2])
    for module in moe.modules():
        if hasattr(module, "init_params_"):
            module.init_params_(0.1)
    ffn = DenseMoEFeedForward(
        dense_norm=norms[0],
        dense=GLUFeedForward(16, 24),
        dense_post_norm=norms[1],
        moe=moe,
        moe_post_norm=norms[3],
    )
    x = torch.randn(2, 3, 16)
    want = norms[1](ffn.dense(norms[0](x))) + norms[3](moe(x))
    torch.testing.assert_close(ffn(x), want)
    # The experts see the normed input, the router the raw one.
    flat = x.reshape(-1, 16)
    _, weights, indices = moe.router(flat)
    torch.testing.assert_close(
        moe(x).reshape(-1, 16), moe.experts(norms[2](flat), indices, weights)
    )


def test_the_layer_adds_its_per_layer_input_then_scales_by_its_scalar() -> None:
    layer = PreNormDecoderLayer(
        attn_norm=RMSNorm(32),
        attn=_attn(),
        ffn_norm=RMSNorm(32),
        ffn=GLUFeedForward(32, 48),
        per_layer_input=PerLayerInputGate(32, 4),
        layer_scale=True,
    )
    assert "layer_scalar" in layer.state_dict()
    x, signal = torch.randn(1, 3, 32), torch.randn(1, 3, 4)
    plain = PreNormDecoderLayer(
        attn_norm=layer.attn_norm, attn=layer.attn, ffn_norm=layer.ffn_norm, ffn=layer.ffn
    )
    with torch.no_grad():
        layer.layer_scalar.fill_(0.5)  # type: ignore[union-attr]
    want = layer.per_layer_input(plain(x, is_causal=True), signal) * 0.5  # type: ignore[misc]
    torch.testing.assert_close(layer(x, is_causal=True, per_layer_input=signal), want)
    with pytest.raises(ForwardInputError, match="per_layer_input"):
        layer(x, is_causal=True)
    assert isinstance(layer.per_layer_input, nn.Module)
