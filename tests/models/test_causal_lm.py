"""The causal_lm family: sinusoidal positions, post-LayerNorm layers, padding and the KV cache."""

from __future__ import annotations

import math

import pytest
import torch

import lmhub
from lmhub.config import apply_overrides, from_dict, from_yaml, to_dict, to_yaml
from lmhub.errors import ConfigError
from lmhub.models.causal_lm import (
    CausalLMConfig,
    CausalLMModel,
    causal_lm_archs,
    sinusoidal_positions,
)
from lmhub.nn.kv_cache import DynamicKVCache

ATOL = 1e-5


def small_config(**overrides: object) -> CausalLMConfig:
    fields: dict[str, object] = dict(
        model_dim=64, num_layers=2, num_heads=4, ffn_inner_dim=128, vocab_size=97, max_seq_len=64
    )
    fields.update(overrides)
    return CausalLMConfig(**fields)  # type: ignore[arg-type]


def small_model(**overrides: object) -> CausalLMModel:
    return CausalLMModel(small_config(**overrides)).eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- config -----------------------------------------------------------------------------------


def test_config_round_trips_and_overrides() -> None:
    config = causal_lm_archs.get("causal_lm_tiny")
    assert from_dict(CausalLMConfig, to_dict(config)) == config
    assert from_yaml(CausalLMConfig, to_yaml(config)) == config
    changed = apply_overrides(config, ["num_heads=8", "dropout_p=0.1", "tie_embeddings=false"])
    assert (changed.num_heads, changed.dropout_p, changed.tie_embeddings) == (8, 0.1, False)
    with pytest.raises(ConfigError, match="expects int"):
        apply_overrides(config, {"num_layers": "many"})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_heads": 5}, "num_heads"),
        ({"model_dim": 63, "num_heads": 1}, "model_dim"),
        ({"pos_theta": 1.0}, "pos_theta"),
        ({"dropout_p": -0.1}, "dropout_p"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        small_config(**overrides).validate()
    assert info.value.field == field


def test_preset_parameter_counts_and_meta_build() -> None:
    hub = lmhub.get_model_hub("causal_lm")
    counts = {}
    for arch in ("causal_lm_tiny", "causal_lm_100m"):
        model = hub.create_new_model(hub.get_model_config(arch), meta=True)
        assert all(p.is_meta for p in model.parameters())
        counts[arch] = sum(p.numel() for p in model.parameters())
    assert 1e6 <= counts["causal_lm_tiny"] <= 10e6
    assert 80e6 <= counts["causal_lm_100m"] <= 130e6
    assert {c.name for c in hub.iter_cards()} == {"causal_lm_tiny", "causal_lm_100m"}


# -- the architecture -------------------------------------------------------------------------


def test_sinusoids_follow_vaswani_et_al() -> None:
    pe = sinusoidal_positions(torch.arange(50), 16)
    pos = torch.arange(50, dtype=torch.float64)[:, None]
    i = torch.arange(8, dtype=torch.float64)[None, :]
    angle = pos / 10_000 ** (2 * i / 16)
    torch.testing.assert_close(pe[:, 0::2].double(), angle.sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(pe[:, 1::2].double(), angle.cos(), atol=1e-5, rtol=0)


def test_layers_are_post_layernorm_with_a_relu_mlp() -> None:
    model = small_model()
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
    model = small_model(num_layers=1)
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
    model = CausalLMModel(small_config(model_dim=256, ffn_inner_dim=512))
    layer = model.layers[1]
    assert layer.attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert layer.ffn.fc1.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert (layer.attn.q_proj.bias == 0).all() and (layer.ffn.fc2.bias == 0).all()
    assert (layer.attn_norm.weight == 1).all() and (layer.attn_norm.bias == 0).all()


# -- behaviour --------------------------------------------------------------------------------


def test_future_tokens_do_not_change_earlier_logits() -> None:
    model = small_model()
    ids = torch.randint(0, 97, (2, 12))
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 97
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert max_diff(a[:, :7], b[:, :7]) <= ATOL
    assert max_diff(a[:, 7:], b[:, 7:]) > 1e-3


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_left_padding_gives_the_logits_of_each_sequence_alone(attn_impl: str) -> None:
    model = small_model(attn_impl=attn_impl)
    seqs = [torch.randint(0, 97, (n,)) for n in (8, 3)]
    ids = torch.zeros(2, 8, dtype=torch.long)
    mask = torch.zeros(2, 8, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, 8 - len(seq) :] = seq
        mask[row, 8 - len(seq) :] = 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        for row, seq in enumerate(seqs):
            assert max_diff(batched[row, 8 - len(seq) :], model(seq[None])[0]) <= ATOL


def test_explicit_position_ids_are_used() -> None:
    model = small_model()
    ids = torch.randint(0, 97, (1, 4))
    with torch.no_grad():
        default = model(ids)
        same = model(ids, position_ids=torch.arange(4)[None])
        shifted = model(ids, position_ids=torch.arange(10, 14)[None])
    assert max_diff(default, same) == 0.0
    assert max_diff(default, shifted) > 1e-3


@pytest.mark.parametrize("padded", [False, True])
def test_incremental_decoding_equals_the_full_forward(padded: bool) -> None:
    model = small_model()
    assert CausalLMModel.supports_kv_cache
    ids = torch.randint(0, 97, (2, 10))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :4] = 0
    with torch.no_grad():
        full = model(ids, attention_mask=mask if padded else None)
        cache = DynamicKVCache()
        steps = [model(ids[:, :6], attention_mask=mask[:, :6] if padded else None, cache=cache)]
        for t in range(6, 10):
            step_mask = mask[:, : t + 1] if padded else None
            steps.append(model(ids[:, t : t + 1], attention_mask=step_mask, cache=cache))
    got = torch.cat(steps, dim=1)
    assert max_diff(got[:, 4:], full[:, 4:]) <= ATOL


def test_eager_and_sdpa_give_the_same_logits() -> None:
    eager = small_model(attn_impl="eager")
    sdpa = small_model(attn_impl="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert max_diff(eager(ids), sdpa(ids)) <= ATOL


def test_tied_and_untied_embeddings_through_the_hub() -> None:
    hub = lmhub.get_model_hub("causal_lm")
    tied = hub.create_new_model(hub.get_model_config("causal_lm_tiny"))
    assert tied.lm_head.weight is tied.embed.weight
    untied = hub.create_new_model(small_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.embed.weight
    assert torch.isfinite(untied(torch.tensor([[1, 2]]))).all()


def test_dropout_is_off_in_eval_and_on_in_train() -> None:
    model = small_model(dropout_p=0.5)
    ids = torch.randint(0, 97, (1, 8))
    with torch.no_grad():
        assert max_diff(model(ids), model(ids)) == 0.0
        model.train()
        assert max_diff(model(ids), model(ids)) > 1e-3


def test_one_training_step_reduces_the_loss() -> None:
    model = small_model().train()
    ids = torch.randint(0, 97, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_fn() -> torch.Tensor:
        logits = model(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    before = loss_fn()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_fn()
    assert after.item() < before.item()
