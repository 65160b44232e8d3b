"""The DeepOne family: DeepNet constants and init, ALiBi, length extrapolation, padding, cache."""

from __future__ import annotations

import math

import pytest
import torch

import lmhub
from lmhub.config import apply_overrides, from_dict, from_yaml, to_dict, to_yaml
from lmhub.errors import ConfigError
from lmhub.models.deepone import DeepOneConfig, DeepOneModel, deepone_archs
from lmhub.nn.alibi import alibi_slopes
from lmhub.nn.kv_cache import DynamicKVCache

ATOL = 1e-5


def small_config(**overrides: object) -> DeepOneConfig:
    fields: dict[str, object] = dict(
        model_dim=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        ffn_inner_dim=96,
        vocab_size=97,
        max_seq_len=32,
    )
    fields.update(overrides)
    return DeepOneConfig(**fields)  # type: ignore[arg-type]


def small_model(**overrides: object) -> DeepOneModel:
    return DeepOneModel(small_config(**overrides)).eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- config -----------------------------------------------------------------------------------


def test_config_round_trips_and_overrides() -> None:
    config = deepone_archs.get("deepone_tiny")
    assert from_dict(DeepOneConfig, to_dict(config)) == config
    assert from_yaml(DeepOneConfig, to_yaml(config)) == config
    changed = apply_overrides(config, ["num_layers=6", "attn_impl=eager", "trainable_alibi=false"])
    assert (changed.num_layers, changed.attn_impl, changed.trainable_alibi) == (6, "eager", False)
    with pytest.raises(ConfigError, match="num_layrs"):
        apply_overrides(config, ["num_layrs=6"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"model_dim": 66}, "head_dim"),
        ({"attn_impl": "flash"}, "attn_impl"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout_p": 1.0}, "dropout_p"),
    ],
)
def test_validate_names_the_bad_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        small_config(**overrides).validate()
    assert info.value.field == field


def test_preset_parameter_counts() -> None:
    hub = lmhub.get_model_hub("deepone")
    counts = {}
    for arch in ("deepone_tiny", "deepone_100m"):
        model = hub.create_new_model(hub.get_model_config(arch), meta=True)
        assert all(p.is_meta for p in model.parameters())
        counts[arch] = sum(p.numel() for p in model.parameters())
    assert 1e6 <= counts["deepone_tiny"] <= 10e6
    assert 80e6 <= counts["deepone_100m"] <= 130e6


def test_cards_resolve_to_the_presets() -> None:
    hub = lmhub.get_model_hub("deepone")
    assert {c.name for c in hub.iter_cards()} == {"deepone_tiny", "deepone_100m"}
    assert hub.get_model_config("deepone_tiny", ["num_layers=2"]).num_layers == 2


# -- DeepNet constants and init -----------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 4, 12, 100])
def test_deepnet_alpha_and_beta(num_layers: int) -> None:
    config = small_config(num_layers=num_layers)
    assert config.deepnet_alpha == pytest.approx((2 * num_layers) ** 0.25, rel=1e-12)
    assert config.deepnet_beta == pytest.approx((8 * num_layers) ** -0.25, rel=1e-12)


def test_layers_scale_the_residual_by_alpha() -> None:
    model = small_model(num_layers=4)
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
    config = small_config(model_dim=256, num_layers=4, num_heads=8, ffn_inner_dim=512)
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
    model = small_model(model_dim=96, num_heads=12, num_kv_heads=4)
    want = torch.tensor([2.0**-k for k in range(1, 9)] + [2.0**-k for k in (0.5, 1.5, 2.5, 3.5)])
    torch.testing.assert_close(model.layers[1].attn.alibi.slopes.detach(), want)


def test_fixed_slopes_are_not_trained() -> None:
    model = small_model(trainable_alibi=False)
    assert not model.layers[0].attn.alibi.slopes.requires_grad


def test_reset_parameters_restores_the_init() -> None:
    model = small_model()
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
    model = small_model(max_seq_len=16)
    ids = torch.randint(0, 97, (1, 256))
    with torch.no_grad():
        logits = model(ids)
        prefix = model(ids[:, :16])
    assert logits.shape == (1, 256, 97)
    assert torch.isfinite(logits).all()
    assert max_diff(logits[:, :16], prefix) <= ATOL


def test_future_tokens_do_not_change_earlier_logits() -> None:
    model = small_model()
    ids = torch.randint(0, 97, (2, 12))
    changed = ids.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 97
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert max_diff(a[:, :8], b[:, :8]) <= ATOL
    assert max_diff(a[:, 8:], b[:, 8:]) > 1e-3


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_left_padding_gives_the_logits_of_each_sequence_alone(attn_impl: str) -> None:
    model = small_model(attn_impl=attn_impl)
    seqs = [torch.randint(0, 97, (n,)) for n in (9, 5)]
    ids = torch.zeros(2, 9, dtype=torch.long)
    mask = torch.zeros(2, 9, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, 9 - len(seq) :] = seq
        mask[row, 9 - len(seq) :] = 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        for row, seq in enumerate(seqs):
            alone = model(seq[None])
            assert max_diff(batched[row, 9 - len(seq) :], alone[0]) <= ATOL


@pytest.mark.parametrize("padded", [False, True])
def test_incremental_decoding_equals_the_full_forward(padded: bool) -> None:
    model = small_model()
    assert DeepOneModel.supports_kv_cache
    ids = torch.randint(0, 97, (2, 11))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :3] = 0
    with torch.no_grad():
        full = model(ids, attention_mask=mask if padded else None)
        cache = DynamicKVCache()
        steps = [model(ids[:, :6], attention_mask=mask[:, :6] if padded else None, cache=cache)]
        for t in range(6, 11):
            step_mask = mask[:, : t + 1] if padded else None
            steps.append(model(ids[:, t : t + 1], attention_mask=step_mask, cache=cache))
    assert cache.seq_len == 11
    got = torch.cat(steps, dim=1)
    rows = (slice(None), slice(3, None)) if padded else (slice(None), slice(None))
    assert max_diff(got[rows], full[rows]) <= ATOL


def test_eager_and_sdpa_give_the_same_logits() -> None:
    eager = small_model(attn_impl="eager")
    sdpa = small_model(attn_impl="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert max_diff(eager(ids), sdpa(ids)) <= ATOL


def test_tied_and_untied_embeddings() -> None:
    tied, untied = small_model(tie_embeddings=True), small_model(tie_embeddings=False)
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.lm_head.weight is not untied.embed.weight
    hub = lmhub.get_model_hub("deepone")
    model = hub.create_new_model(hub.get_model_config("deepone_tiny"))
    assert model.lm_head.weight is model.embed.weight
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


def test_return_hidden() -> None:
    model = small_model()
    hidden = model(torch.randint(0, 97, (1, 5)), return_hidden=True)
    assert hidden.shape == (1, 5, 64)


def test_one_training_step_reduces_the_loss() -> None:
    model = small_model().train()
    ids = torch.randint(0, 97, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_fn() -> torch.Tensor:
        logits = model(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    before = loss_fn()
    before.backward()
    slopes = model.layers[0].attn.alibi.slopes
    assert slopes.grad is not None and slopes.grad.abs().sum() > 0
    optimizer.step()
    with torch.no_grad():
        after = loss_fn()
    assert after.item() < before.item()
