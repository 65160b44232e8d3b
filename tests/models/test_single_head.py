"""The single-head family: merged query-key attention, per-layer ALiBi slope, padding, cache."""

from __future__ import annotations

import math

import pytest
import torch

import lmhub
from lmhub.config import apply_overrides, from_dict, from_yaml, to_dict, to_yaml
from lmhub.errors import ConfigError
from lmhub.models.single_head import SingleHeadConfig, SingleHeadModel, single_head_archs
from lmhub.nn.kv_cache import DynamicKVCache

ATOL = 1e-5


def small_config(**overrides: object) -> SingleHeadConfig:
    fields: dict[str, object] = dict(
        model_dim=48, num_layers=2, ffn_inner_dim=96, vocab_size=97, max_seq_len=32
    )
    fields.update(overrides)
    return SingleHeadConfig(**fields)  # type: ignore[arg-type]


def small_model(**overrides: object) -> SingleHeadModel:
    return SingleHeadModel(small_config(**overrides)).eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- config -----------------------------------------------------------------------------------


def test_config_round_trips_and_overrides() -> None:
    config = single_head_archs.get("single_head_tiny")
    assert from_dict(SingleHeadConfig, to_dict(config)) == config
    assert from_yaml(SingleHeadConfig, to_yaml(config)) == config
    changed = apply_overrides(config, {"alibi_slope_init": 0.25, "activation": "relu"})
    assert (changed.alibi_slope_init, changed.activation) == (0.25, "relu")
    with pytest.raises(ConfigError, match="num_heads"):
        apply_overrides(config, ["num_heads=2"])  # one head is the point of the family


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"activation": "tanh"}, "activation"),
        ({"attn_impl": "x"}, "attn_impl"),
        ({"model_dim": 0}, "model_dim"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        small_config(**overrides).validate()
    assert info.value.field == field


def test_preset_parameter_counts_and_meta_build() -> None:
    hub = lmhub.get_model_hub("single_head")
    counts = {}
    for arch in ("single_head_tiny", "single_head_100m"):
        model = hub.create_new_model(hub.get_model_config(arch), meta=True)
        assert all(p.is_meta for p in model.parameters())
        counts[arch] = sum(p.numel() for p in model.parameters())
    assert 1e6 <= counts["single_head_tiny"] <= 10e6
    assert 80e6 <= counts["single_head_100m"] <= 130e6
    assert {c.name for c in hub.iter_cards()} == {"single_head_tiny", "single_head_100m"}


# -- the merged query-key head ----------------------------------------------------------------


def test_each_layer_has_one_qk_matrix_one_value_matrix_and_one_slope() -> None:
    model = small_model()
    shapes = {n: tuple(p.shape) for n, p in model.layers[0].attn.named_parameters()}
    assert shapes == {"qk_proj.weight": (48, 48), "v_proj.weight": (48, 48), "alibi.slopes": (1,)}
    assert model.layers[0].attn.alibi.slopes.item() == 0.5
    assert model.layers[1].attn.alibi.slopes.requires_grad
    assert not small_model(trainable_alibi=False).layers[0].attn.alibi.slopes.requires_grad


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_attention_matches_the_formula(attn_impl: str) -> None:
    attn = small_model(attn_impl=attn_impl, alibi_slope_init=0.3).layers[0].attn
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
    model = SingleHeadModel(small_config(model_dim=256, num_layers=8, ffn_inner_dim=512))
    residual_std = 0.02 / math.sqrt(16)
    layer = model.layers[3]
    assert layer.attn.qk_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert layer.attn.v_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert layer.ffn.fc2.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert (layer.ffn.fc1.bias == 0).all() and (model.final_norm.weight == 1).all()


# -- behaviour --------------------------------------------------------------------------------


def test_runs_beyond_the_training_length_and_is_causal() -> None:
    model = small_model(max_seq_len=16)
    ids = torch.randint(0, 97, (2, 64))
    changed = ids.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 97
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (2, 64, 97) and torch.isfinite(a).all()
    assert max_diff(a[:, :40], b[:, :40]) <= ATOL
    assert max_diff(a[:, 40:], b[:, 40:]) > 1e-3


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_left_padding_gives_the_logits_of_each_sequence_alone(attn_impl: str) -> None:
    model = small_model(attn_impl=attn_impl)
    seqs = [torch.randint(0, 97, (n,)) for n in (4, 10)]
    ids = torch.zeros(2, 10, dtype=torch.long)
    mask = torch.zeros(2, 10, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, 10 - len(seq) :] = seq
        mask[row, 10 - len(seq) :] = 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        for row, seq in enumerate(seqs):
            assert max_diff(batched[row, 10 - len(seq) :], model(seq[None])[0]) <= ATOL


@pytest.mark.parametrize("padded", [False, True])
def test_incremental_decoding_equals_the_full_forward(padded: bool) -> None:
    model = small_model()
    assert SingleHeadModel.supports_kv_cache
    ids = torch.randint(0, 97, (2, 10))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :2] = 0
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        cache = DynamicKVCache()
        steps = [model(ids[:, :5], attention_mask=mask[:, :5], cache=cache)]
        for t in range(5, 10):
            steps.append(model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache))
    got = torch.cat(steps, dim=1)
    assert max_diff(got[:, 2:], full[:, 2:]) <= ATOL


def test_eager_and_sdpa_give_the_same_logits() -> None:
    eager = small_model(attn_impl="eager")
    sdpa = small_model(attn_impl="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert max_diff(eager(ids), sdpa(ids)) <= ATOL


def test_tied_and_untied_embeddings_through_the_hub() -> None:
    hub = lmhub.get_model_hub("single_head")
    tied = hub.create_new_model(hub.get_model_config("single_head_tiny"))
    assert tied.lm_head.weight is tied.embed.weight
    untied = hub.create_new_model(small_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.embed.weight
    assert untied(torch.tensor([[1, 2]]), return_hidden=True).shape == (1, 2, 48)


def test_one_training_step_reduces_the_loss() -> None:
    model = small_model().train()
    ids = torch.randint(0, 97, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_fn() -> torch.Tensor:
        logits = model(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    before = loss_fn()
    before.backward()
    assert model.layers[1].attn.alibi.slopes.grad is not None
    optimizer.step()
    with torch.no_grad():
        after = loss_fn()
    assert after.item() < before.item()
