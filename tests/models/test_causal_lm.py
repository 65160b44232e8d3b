"""The causal_lm family: sinusoidal positions, post-LayerNorm layers, init and dropout.

What every family shares (configs, presets, padding, KV cache, tying, training) is checked in
test_family_contract.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmhub.errors import ConfigError
from lmhub.models.causal_lm import CausalLMModel, sinusoidal_positions
from tests.models.test_family_contract import ATOL, max_diff, small_config, small_model

FAMILY = "causal_lm"


# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"model_dim": 63, "num_heads": 1}, "model_dim"), ({"pos_theta": 1.0}, "pos_theta")],
)
def test_validate_names_the_bad_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        small_config(FAMILY, **overrides).validate()
    assert info.value.field == field


# -- the architecture -------------------------------------------------------------------------


def test_sinusoids_follow_vaswani_et_al() -> None:
    pe = sinusoidal_positions(torch.arange(50), 16)
    pos = torch.arange(50, dtype=torch.float64)[:, None]
    i = torch.arange(8, dtype=torch.float64)[None, :]
    angle = pos / 10_000 ** (2 * i / 16)
    torch.testing.assert_close(pe[:, 0::2].double(), angle.sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(pe[:, 1::2].double(), angle.cos(), atol=1e-5, rtol=0)


def test_layers_are_post_layernorm_with_a_relu_mlp() -> None:
    model = small_model(FAMILY)
    layer, x = model.layers[0], torch.randn(1, 5, 64)
    assert layer.residual_scale == 1.0 and layer.ffn.activation == "relu"
    with torch.no_grad():
        h = layer.attn_norm(x + layer.attn(x, is_causal=True))
        want = layer.ffn_norm(h + layer.ffn.fc2(torch.relu(layer.ffn.fc1(h))))
        assert max_diff(layer(x, is_causal=True), want) <= ATOL
        # The last layer's output is already normed: zero mean and unit variance per token.
        hidden = model(torch.randint(0, 97, (1, 6)), return_hidden=True)
    torch.testing.assert_close(hidden.mean(-1), torch.zeros(1, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.var(-1, unbiased=False), torch.ones(1, 6), atol=1e-3, rtol=0)


def test_embeddings_are_scaled_and_positions_added() -> None:
    model = small_model(FAMILY, num_layers=1)
    ids = torch.tensor([[5, 6, 7]])
    captured: list[torch.Tensor] = []
    handle = model.layers[0].register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    with torch.no_grad():
        model(ids)
    handle.remove()
    want = model.embed(ids) * math.sqrt(64) + sinusoidal_positions(torch.arange(3), 64)
    assert max_diff(captured[0], want) <= ATOL


def test_init() -> None:
    torch.manual_seed(0)
    model = CausalLMModel(small_config(FAMILY, model_dim=256, ffn_inner_dim=512))
    layer = model.layers[1]
    assert layer.attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert layer.ffn.fc1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert (layer.attn.q_proj.bias == 0).all() and (layer.ffn.fc2.bias == 0).all()
    assert (layer.attn_norm.weight == 1).all() and (layer.attn_norm.bias == 0).all()


# -- behaviour --------------------------------------------------------------------------------


def test_explicit_position_ids_are_used() -> None:
    model = small_model(FAMILY)
    ids = torch.randint(0, 97, (1, 4))
    with torch.no_grad():
        default = model(ids)
        same = model(ids, position_ids=torch.arange(4)[None])
        shifted = model(ids, position_ids=torch.arange(10, 14)[None])
    assert max_diff(default, same) == 0.0
    assert max_diff(default, shifted) > 1e-3


def test_dropout_is_off_in_eval_and_on_in_train() -> None:
    model = small_model(FAMILY, dropout_p=0.5)
    ids = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        assert max_diff(model(ids), model(ids)) == 0.0
        model.train()
        assert max_diff(model(ids), model(ids)) > 1e-3
