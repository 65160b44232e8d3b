"""The DeepOne family: DeepNet constants and init, ALiBi slopes and length extrapolation.

What every family shares (configs, presets, padding, KV cache, tying, training) is checked in
test_family_contract.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.models.deepone import DeepOneModel
from lmhub.nn.alibi import alibi_slopes
from tests.models.test_family_contract import ATOL, max_diff, small_config, small_model

FAMILY = "deepone"


# -- DeepNet constants and init -----------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 4, 12, 100])
def test_deepnet_alpha_and_beta(num_layers: int) -> None:
    config = small_config(FAMILY, num_layers=num_layers)
    assert config.deepnet_alpha == pytest.approx((2 * num_layers) ** 0.25, rel=1e-12)
    assert config.deepnet_beta == pytest.approx((8 * num_layers) ** -0.25, rel=1e-12)


def test_layers_scale_the_residual_by_alpha() -> None:
    model = small_model(FAMILY, num_layers=4)
    assert all(layer.residual_scale == pytest.approx(8**0.25) for layer in model.layers)
    # Check the formula through the forward itself: norm(alpha * x + attn(x)), then the ffn.
    layer, x = model.layers[0], torch.randn(1, 5, 64)
    with torch.no_grad():
        h = layer.attn_norm(8**0.25 * x + layer.attn(x, is_causal=True))
        want = layer.ffn_norm(8**0.25 * h + layer.ffn(h))
        got = layer(x, is_causal=True)
    assert max_diff(got, want) <= ATOL


def test_init_is_xavier_normal_with_gain_beta() -> None:
    torch.manual_seed(0)
    config = small_config(FAMILY, model_dim=256, num_layers=4, num_heads=8, ffn_inner_dim=512)
    model = DeepOneModel(config)
    beta = (8 * 4) ** -0.25
    for layer in model.layers:
        attn, ffn = layer.attn, layer.ffn
        gains = {
            "q_proj": (attn.q_proj.weight, 1.0),
            "k_proj": (attn.k_proj.weight, 1.0),
            "v_proj": (attn.v_proj.weight, beta),
            "o_proj": (attn.o_proj.weight, beta),
            "gate_proj": (ffn.gate_proj.weight, beta),
            "up_proj": (ffn.up_proj.weight, beta),
            "down_proj": (ffn.down_proj.weight, beta),
        }
        for name, (weight, gain) in gains.items():
            fan_out, fan_in = weight.shape
            want = gain * math.sqrt(2.0 / (fan_in + fan_out))
            # The sample std of n normals has relative standard error ~1/sqrt(2n); allow 5 of them.
            tolerance = 5.0 / math.sqrt(2 * weight.numel())
            assert weight.std().item() == pytest.approx(want, rel=tolerance), name
            assert abs(weight.mean().item()) < 5 * want / math.sqrt(weight.numel()), name
        torch.testing.assert_close(attn.alibi.slopes.detach(), torch.tensor(alibi_slopes(8)))
        assert attn.alibi.slopes.requires_grad
        assert (layer.attn_norm.weight == 1).all() and (layer.attn_norm.bias == 0).all()


def test_non_power_of_two_heads_get_the_interleaved_slopes() -> None:
    model = small_model(FAMILY, model_dim=96, num_heads=12, num_kv_heads=4)
    want = torch.tensor([2.0**-k for k in range(1, 9)] + [2.0**-k for k in (0.5, 1.5, 2.5, 3.5)])
    torch.testing.assert_close(model.layers[1].attn.alibi.slopes.detach(), want)


def test_fixed_slopes_are_not_trained() -> None:
    model = small_model(FAMILY, trainable_alibi=False)
    assert not model.layers[0].attn.alibi.slopes.requires_grad


def test_reset_parameters_restores_the_init() -> None:
    model = small_model(FAMILY)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.3)
    model.reset_parameters()
    torch.testing.assert_close(
        model.layers[0].attn.alibi.slopes.detach(), torch.tensor(alibi_slopes(4))
    )
    assert (model.layers[0].attn_norm.weight == 1).all()
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.1)


# -- behaviour --------------------------------------------------------------------------------


def test_runs_far_beyond_the_training_length() -> None:
    model = small_model(FAMILY, max_seq_len=16)
    ids = torch.randint(0, 97, (1, 256))
    with torch.no_grad():
        logits = model(ids)
        prefix = model(ids[:, :16])
    assert logits.shape == (1, 256, 97)
    assert torch.isfinite(logits).all()
    assert max_diff(logits[:, :16], prefix) <= ATOL
