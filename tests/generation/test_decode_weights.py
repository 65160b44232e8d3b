"""Decode-time fused weight copies: same outputs, rebuilt when a weight changes, never saved."""

from __future__ import annotations

import torch
from torch import nn

from lmhub.nn.decode_weights import FusedLinear, clear_decode_weights, decode_weights
from lmhub.nn.ffn import GLUFeedForward, MLPFeedForward

ATOL = 1e-5


def test_fused_linear_equals_the_separate_layers() -> None:
    torch.manual_seed(0)
    a, b, c = nn.Linear(16, 8), nn.Linear(16, 4, bias=False), nn.Linear(16, 12)
    fused = FusedLinear(a, b, c)
    assert fused.out_features == [8, 4, 12]
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        got = fused(x).split(fused.out_features, dim=-1)
        for y, layer in zip(got, (a, b, c), strict=True):
            assert (y - layer(x)).abs().max().item() <= ATOL


def test_copies_are_rebuilt_after_an_in_place_update_and_reused_otherwise() -> None:
    torch.manual_seed(0)
    ffn = GLUFeedForward(16, 32).eval()
    x = torch.randn(1, 2, 16)
    with torch.no_grad():
        first = decode_weights(ffn).modules[0][1]
        assert decode_weights(ffn).modules[0][1] is first  # cached
        ffn.up_proj.weight.mul_(2.0)  # what an optimizer step does: bumps the version counter
        second = decode_weights(ffn).modules[0][1]
        assert second is not first
        with decode_weights(ffn):
            got = ffn(x)
        assert (got - ffn(x)).abs().max().item() <= ATOL
        clear_decode_weights(ffn)
        assert decode_weights(ffn).modules[0][1] is not second


def test_mlp_and_disabled_blocks() -> None:
    torch.manual_seed(0)
    mlp = MLPFeedForward(16, 32).eval()
    x = torch.randn(3, 16)
    with torch.no_grad():
        with decode_weights(mlp, enabled=False):
            assert mlp._decode_weights is None
        with decode_weights(mlp):
            assert mlp._decode_weights is not None
            got = mlp(x)
    assert (got - mlp(x)).abs().max().item() <= ATOL
    assert set(mlp.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


def test_load_state_dict_refreshes_the_copies_and_other_dtypes_use_f_linear() -> None:
    torch.manual_seed(0)
    ffn = GLUFeedForward(16, 32).double().eval()  # float64: no oneDNN, plain F.linear on copies
    x = torch.randn(2, 16, dtype=torch.float64)
    with torch.no_grad():
        assert not decode_weights(ffn).modules[0][1][0].onednn
        other = GLUFeedForward(16, 32).double()
        ffn.load_state_dict(other.state_dict())
        with decode_weights(ffn):
            got = ffn(x)
        assert torch.allclose(got, other(x), atol=1e-12)
