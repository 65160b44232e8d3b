"""The single-head family: merged query-key attention, per-layer ALiBi slope, init.

What every family shares (configs, presets, padding, KV cache, tying, training) is checked in
test_family_contract.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.config import apply_overrides
from lmhub.errors import ConfigError
from lmhub.models.single_head import SingleHeadModel
from tests.models.test_family_contract import ATOL, max_diff, small_config, small_model

FAMILY = "single_head"


# -- config -----------------------------------------------------------------------------------


def test_config_has_no_head_counts_and_checks_the_activation() -> None:
    config = small_config(FAMILY)
    with pytest.raises(ConfigError, match="num_heads"):
        apply_overrides(config, ["num_heads=2"])  # one head is the point of the family
    with pytest.raises(ConfigError) as info:
        apply_overrides(config, {"activation": "tanh"}).validate()
    assert info.value.field == "activation"


# -- the merged query-key head ----------------------------------------------------------------


def test_each_layer_has_one_qk_matrix_one_value_matrix_and_one_slope() -> None:
    model = small_model(FAMILY)
    shapes = {n: tuple(p.shape) for n, p in model.layers[0].attn.named_parameters()}
    assert shapes == {"qk_proj.weight": (48, 48), "v_proj.weight": (48, 48), "alibi.slopes": (1,)}
    assert model.layers[0].attn.alibi.slopes.item() == 0.5
    assert model.layers[1].attn.alibi.slopes.requires_grad
    assert not small_model(FAMILY, trainable_alibi=False).layers[0].attn.alibi.slopes.requires_grad


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_attention_matches_the_formula(attn_impl: str) -> None:
    attn = small_model(FAMILY, attn_impl=attn_impl, alibi_slope_init=0.3).layers[0].attn
    x = torch.randn(2, 7, 48)
    w_qk, w_v = attn.qk_proj.weight, attn.v_proj.weight
    with torch.no_grad():
        # scores_ij = x_i W x_j / sqrt(d) + slope * (j - i), causal; then softmax(...) x W_v.
        scores = torch.einsum("bid,ed,bje->bij", x, w_qk, x) / math.sqrt(48)
        i, j = torch.arange(7)[:, None], torch.arange(7)[None, :]
        scores = (scores + 0.3 * (j - i)).masked_fill(j > i, float("-inf"))
        want = torch.softmax(scores, dim=-1) @ (x @ w_v.T)
        got = attn(x, is_causal=True)
    assert max_diff(got, want) <= ATOL


def test_init_scales_the_residual_writers() -> None:
    torch.manual_seed(0)
    model = SingleHeadModel(small_config(FAMILY, model_dim=256, num_layers=8, ffn_inner_dim=512))
    residual_std = 0.02 / math.sqrt(16)
    layer = model.layers[3]
    assert layer.attn.qk_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert layer.attn.v_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert layer.ffn.fc2.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert (layer.ffn.fc1.bias == 0).all() and (model.final_norm.weight == 1).all()


# -- behaviour --------------------------------------------------------------------------------


def test_runs_beyond_the_training_length_and_is_causal() -> None:
    model = small_model(FAMILY, max_seq_len=16)
    ids = torch.randint(0, 97, (2, 64))
    changed = ids.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 97
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (2, 64, 97) and torch.isfinite(a).all()
    assert max_diff(a[:, :40], b[:, :40]) <= ATOL
    assert max_diff(a[:, 40:], b[:, 40:]) > 1e-3
