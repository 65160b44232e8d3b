"""The decode-time module swap: same outputs, one forward per block, rebuilt when weights change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmhub.nn import decode_weights as dw
from lmhub.nn.attention import Attention
from lmhub.nn.decode_weights import (
    DecodeLinear,
    FastRMSNorm,
    FusedGLUFeedForward,
    FusedQKVAttention,
    clear_decode_model,
    decode_model,
    kernel_choices,
)
from lmhub.nn.ffn import GLUFeedForward, MLPFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import RotaryEmbedding

ATOL = 1e-5


@pytest.mark.parametrize("kernel", dw.KERNELS)
def test_every_kernel_equals_the_separate_layers(kernel: str) -> None:
    torch.manual_seed(0)
    a, b, c = nn.Linear(16, 8), nn.Linear(16, 4, bias=False), nn.Linear(16, 12)
    fused = DecodeLinear([a, b, c])
    assert fused.out_features == [8, 4, 12]
    x = torch.randn(1, 1, 16) if kernel == "mv" else torch.randn(2, 3, 16)  # mv: one row
    with torch.no_grad():
        if fused._layout(kernel) is None:
            pytest.skip(f"{kernel} is not available in this PyTorch build")
        got = fused._kernel(kernel)(x).split(fused.out_features, dim=-1)
        for y, layer in zip(got, (a, b, c), strict=True):
            assert (y - layer(x)).abs().max().item() <= ATOL


def test_the_kernel_is_chosen_once_per_shape_and_row_count() -> None:
    torch.manual_seed(0)
    lin = DecodeLinear([nn.Linear(24, 40)])
    with torch.no_grad():
        lin(torch.randn(3, 24))
        lin(torch.randn(1, 3, 24))  # the same 3 rows: no new choice
    mine = [k for k in kernel_choices() if k[1:3] == (40, 24) and k[5] == 3]
    assert len(mine) == 1
    assert kernel_choices()[mine[0]] in dw.KERNELS
    assert mine[0][0] == dw.cpu_model()
    # Layouts nobody chose are freed; the source weight is never copied for `linear`.
    assert set(lin._layouts) <= {"linear_t", "onednn"}


def test_blocks_are_swapped_in_a_copy_and_the_model_keeps_its_modules() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        Attention(32, num_heads=4, num_kv_heads=2, head_dim=8), GLUFeedForward(32, 48)
    ).eval()
    fast = decode_model(model)
    assert type(fast[0]) is FusedQKVAttention and type(fast[1]) is FusedGLUFeedForward
    assert type(model[0]) is Attention and type(model[1]) is GLUFeedForward
    assert isinstance(fast[0].o_proj, DecodeLinear) and isinstance(model[0].o_proj, nn.Linear)
    assert fast[0].q_proj.weight is model[0].q_proj.weight  # shared, not copied
    assert set(fast.state_dict()) <= set(model.state_dict())  # the copies are never saved
    x = torch.randn(2, 5, 32)
    with torch.inference_mode():
        want = model[1](model[0](x, is_causal=True))
        got = fast[1](fast[0](x, is_causal=True))
    assert (got - want).abs().max().item() <= ATOL


def test_the_copy_is_reused_and_rebuilt_after_an_in_place_update() -> None:
    torch.manual_seed(0)
    ffn = GLUFeedForward(16, 32).eval()
    x = torch.randn(1, 2, 16)
    first = decode_model(ffn)
    assert decode_model(ffn) is first  # cached
    with torch.no_grad():
        ffn.up_proj.weight.mul_(2.0)  # what an optimizer step does: bumps the version counter
    second = decode_model(ffn)
    assert second is not first
    with torch.inference_mode():
        assert (second(x) - ffn(x)).abs().max().item() <= ATOL
    clear_decode_model(ffn)
    assert decode_model(ffn) is not second


def test_load_state_dict_refreshes_the_copy_and_other_dtypes_work() -> None:
    torch.manual_seed(0)
    ffn = GLUFeedForward(16, 32).double().eval()  # float64: no oneDNN candidate
    x = torch.randn(2, 16, dtype=torch.float64)
    with torch.inference_mode():
        decode_model(ffn)(x)
    other = GLUFeedForward(16, 32).double()
    ffn.load_state_dict(other.state_dict())
    with torch.inference_mode():
        got = decode_model(ffn)(x)
        assert torch.allclose(got, other(x), atol=1e-12)


def test_plain_mlps_get_decode_linears() -> None:
    torch.manual_seed(0)
    mlp = MLPFeedForward(16, 32).eval()
    fast = decode_model(mlp)
    assert isinstance(fast.fc1, DecodeLinear) and isinstance(mlp.fc1, nn.Linear)
    x = torch.randn(3, 16)
    with torch.inference_mode():
        assert (fast(x) - mlp(x)).abs().max().item() <= ATOL
    assert set(mlp.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def test_the_one_kernel_rms_norm_gives_the_same_bits_in_float32() -> None:
    torch.manual_seed(0)
    norm = RMSNorm(48, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    fast = decode_model(nn.Sequential(norm, nn.Linear(48, 4)))[0]
    assert type(fast) is FastRMSNorm
    x = torch.randn(64, 7, 48) * 30
    with torch.inference_mode():
        assert torch.equal(fast(x), norm(x))
    # bfloat16 keeps RMSNorm: the one kernel rounds differently there.
    half = nn.Sequential(RMSNorm(48), nn.Linear(48, 4)).to(torch.bfloat16)
    assert type(decode_model(half)[0]) is RMSNorm


def test_joint_rope_gives_the_same_bits_as_apply_rotary() -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8).eval()
    fast = decode_model(attn)
    rope = RotaryEmbedding(8, theta=10_000.0, max_seq_len=64)
    x = torch.randn(2, 5, 32)
    cos_sin = rope(torch.arange(3, 8).expand(2, 5), torch.float32)
    with torch.inference_mode():
        want = attn.project_qkv(x, cos_sin)
        # Compare the rotation alone: give the fused layer the plain layers' exact outputs.
        fast.qkv._runs = {
            key: (lambda inp: torch.cat([attn.q_proj(inp), attn.k_proj(inp), attn.v_proj(inp)], -1))
            for key in [(10, torch.get_num_threads())]
        }
        got = fast.project_qkv(x, cos_sin)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
