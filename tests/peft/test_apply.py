"""LoRA on every registered family: exact identity at init, freezing, merge/unmerge, training."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from lmhub.errors import AdapterError, ConfigError, StateDictMismatchError
from lmhub.generation import generate
from lmhub.peft import (
    DEFAULT_TARGETS,
    LoraConfig,
    LoraLinear,
    apply_lora,
    load_trainable_state_dict,
    lora_layers,
    merge_lora,
    trainable_state_dict,
    unmerge_lora,
)
from tests.models.test_family_contract import DECODERS, FAMILIES, small_model

ATOL = 1e-5


def tiny(family: str, seed: int = 0, **overrides: object) -> nn.Module:
    torch.manual_seed(seed)
    return small_model(family, **overrides).eval()


def randomise_adapters(model: nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            for p in (layer.lora_A.weight, layer.lora_B.weight):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            if layer.lora_magnitude_vector is not None:
                m = layer.lora_magnitude_vector
                m.mul_(1 + 0.2 * torch.randn(m.shape, generator=gen))


def ids(vocab: int = 90) -> torch.Tensor:
    return torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("family", FAMILIES)
def test_adapted_model_equals_base_bit_for_bit(family: str, dora: bool) -> None:
    model = tiny(family)
    x = ids()
    with torch.no_grad():
        want = model(x)
        apply_lora(model, LoraConfig(rank=4, alpha=8, use_dora=dora))
        got = model(x)
    assert torch.equal(got, want)
    # Every default target of the family was wrapped, and nothing else trains.
    layers = lora_layers(model)
    leaves = {name.rsplit(".", 1)[-1] for name in layers}
    assert leaves == set(DEFAULT_TARGETS[family])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    parts = ["lora_A.weight", "lora_B.weight"] + (["lora_magnitude_vector"] if dora else [])
    assert trainable == {f"{n}.{part}" for n in layers for part in parts}


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("family", FAMILIES)
def test_merge_matches_unmerged_and_gives_a_plain_model(family: str, dora: bool) -> None:
    model = apply_lora(tiny(family), LoraConfig(rank=4, alpha=8, use_dora=dora))
    randomise_adapters(model)
    x = ids()
    with torch.no_grad():
        adapted = model(x)
        assert not torch.allclose(adapted, apply_lora(tiny(family), LoraConfig())(x))
        merged = merge_lora(model)(x)
    assert not lora_layers(model)
    assert not any(isinstance(m, LoraLinear) for m in model.modules())
    assert all(".lora_" not in k and "base_layer" not in k for k in model.state_dict())
    assert (merged - adapted).abs().max().item() <= ATOL


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merge_keep_adapters_then_unmerge(dora: bool) -> None:
    config = LoraConfig(rank=4, alpha=8, use_rslora=True, use_dora=dora)
    model = apply_lora(tiny("llama", attn_bias=True, ffn_bias=True), config)
    randomise_adapters(model)
    base = {n: layer.base_layer.weight.clone() for n, layer in lora_layers(model).items()}
    x = ids()
    with torch.no_grad():
        adapted = model(x)
        merge_lora(model, keep_adapters=True)
        assert all(layer.merged for layer in lora_layers(model).values())
        merged = model(x)
        merge_lora(model, keep_adapters=True)  # merging twice must not add the update twice
        assert torch.equal(model(x), merged)
        unmerge_lora(model)
        unmerged = model(x)
    assert (merged - adapted).abs().max().item() <= ATOL
    assert (unmerged - adapted).abs().max().item() <= ATOL
    for name, layer in lora_layers(model).items():
        assert not layer.merged
        torch.testing.assert_close(layer.base_layer.weight, base[name], atol=1e-6, rtol=0)


def test_scaling_plain_and_rslora() -> None:
    assert LoraConfig(rank=16, alpha=32).scaling == 2.0
    assert LoraConfig(rank=16, alpha=32, use_rslora=True).scaling == 8.0
    lin = nn.Linear(6, 5, bias=True)
    for rslora in (False, True):
        layer = LoraLinear(lin, rank=4, alpha=3.0, use_rslora=rslora)
        with torch.no_grad():
            layer.lora_B.weight.normal_()
        x = torch.randn(3, 6)
        scale = 3.0 / (math.sqrt(4) if rslora else 4)
        want = lin(x) + x @ layer.lora_A.weight.T @ layer.lora_B.weight.T * scale
        torch.testing.assert_close(layer(x), want)
        torch.testing.assert_close(
            layer.weight, lin.weight + scale * layer.lora_B.weight @ layer.lora_A.weight
        )
        assert layer.bias is lin.bias


def test_dora_layer_matches_the_formula() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 5, bias=True)
    layer = LoraLinear(lin, rank=3, alpha=6.0, use_dora=True)
    m = layer.lora_magnitude_vector
    assert m is not None
    torch.testing.assert_close(m, lin.weight.norm(dim=1))
    with torch.no_grad():
        layer.lora_B.weight.normal_()
        m.mul_(torch.rand(5) + 0.5)
    adapted = lin.weight + 2.0 * layer.lora_B.weight @ layer.lora_A.weight
    want_w = (m / adapted.norm(dim=1))[:, None] * adapted
    x = torch.randn(4, 6)
    torch.testing.assert_close(layer(x), x @ want_w.T + lin.bias)
    torch.testing.assert_close(layer.weight, want_w)
    # The row norm is a constant for backward (DoRA paper, section 4.3): d out / d m is exact.
    layer(x).sum().backward()
    assert m.grad is not None
    torch.testing.assert_close(m.grad, (x @ adapted.T / adapted.norm(dim=1)).sum(0).detach())


def test_a_is_kaiming_uniform_and_b_zero() -> None:
    torch.manual_seed(0)
    layer = LoraLinear(nn.Linear(400, 300), rank=64, alpha=1.0)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) bound: sqrt(6 / ((1 + 5) * fan_in))
    a = layer.lora_A.weight
    assert a.abs().max().item() <= bound
    assert a.abs().max().item() > 0.95 * bound  # uniform over the whole range
    assert a.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.count_nonzero(layer.lora_B.weight) == 0


def test_targets_patterns_and_globs() -> None:
    model = apply_lora(tiny("llama"), LoraConfig(targets=["attn.q_proj", "layers.1.ffn.*"]))
    assert sorted(lora_layers(model)) == [
        "layers.0.attn.q_proj",
        "layers.1.attn.q_proj",
        "layers.1.ffn.down_proj",
        "layers.1.ffn.gate_proj",
        "layers.1.ffn.up_proj",
    ]
    model = apply_lora(tiny("llama"), LoraConfig(targets=["lm_head"]))
    assert list(lora_layers(model)) == ["lm_head"]


def test_unknown_target_lists_the_linear_layers() -> None:
    with pytest.raises(ConfigError) as info:
        apply_lora(tiny("llama"), LoraConfig(targets=["q_proj", "qproj"]))
    err = info.value
    assert err.field == "targets" and err.value == "qproj"
    msg = str(err)
    assert "'qproj' matches none" in msg and "Did you mean 'q_proj'" in msg
    for leaf in ("down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "up_proj", "v_proj"):
        assert leaf in msg
    # A suffix must end at a dot: "proj" is not a module name.
    with pytest.raises(ConfigError, match="'proj' matches none"):
        apply_lora(tiny("llama"), LoraConfig(targets=["proj"]))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 2.5}, "rank"),
        ({"alpha": "16"}, "alpha"),
        ({"dropout": 1.0}, "dropout"),
        ({"targets": "q_proj"}, "targets"),
        ({"bias": "all"}, "bias"),
        ({"use_rslora": "yes"}, "use_rslora"),
        ({"use_dora": 1}, "use_dora"),
    ],
)
def test_bad_config_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_lora(tiny("llama"), LoraConfig(**overrides))
    assert info.value.field == field


def test_applying_twice_is_refused() -> None:
    model = apply_lora(tiny("llama"), LoraConfig())
    with pytest.raises(ConfigError, match="already has LoRA layers"):
        apply_lora(model, LoraConfig())


def test_dropout_only_while_training() -> None:
    model = apply_lora(tiny("llama"), LoraConfig(dropout=0.5))
    randomise_adapters(model)
    layer = lora_layers(model)["layers.0.attn.q_proj"]
    assert layer.dropout == 0.5
    x = torch.randn(4, 64)
    with torch.no_grad():
        assert torch.equal(layer(x), layer(x))  # eval: no dropout
        layer.train()
        assert not torch.equal(layer(x), layer(x))


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_training_changes_only_the_adapters(dora: bool) -> None:
    torch.manual_seed(0)
    config = LoraConfig(rank=4, alpha=8, dropout=0.1, use_dora=dora)
    model = apply_lora(tiny("llama"), config).train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".lora_" not in k}
    before = {k: v.clone() for k, v in trainable_state_dict(model).items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 90, (4, 16))
    losses = []
    for _ in range(5):
        logits = model(x[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for k, v in model.state_dict().items():
        if ".lora_" not in k:
            assert torch.equal(v, frozen[k]), k
    after = trainable_state_dict(model)
    assert after.keys() == before.keys()
    moved = [k for k in after if "lora_B" in k or "magnitude" in k]
    assert len(moved) == 14 * (2 if dora else 1)
    assert all(not torch.equal(after[k], before[k]) for k in moved)


def test_trainable_state_dict_round_trip() -> None:
    model = apply_lora(tiny("llama"), LoraConfig(rank=4, targets=["q_proj", "v_proj"]))
    randomise_adapters(model)
    state = {k: v.clone() for k, v in trainable_state_dict(model).items()}
    assert sorted(state)[:2] == [
        "layers.0.attn.q_proj.lora_A.weight",
        "layers.0.attn.q_proj.lora_B.weight",
    ]
    assert len(state) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    fresh = apply_lora(tiny("llama"), LoraConfig(rank=4, targets=["q_proj", "v_proj"]))
    load_trainable_state_dict(fresh, state)
    x = ids()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    bad = dict(state)
    bad.pop("layers.0.attn.q_proj.lora_A.weight")
    bad["layers.0.attn.k_proj.lora_A.weight"] = torch.zeros(4, 64)
    bad["layers.1.attn.v_proj.lora_B.weight"] = torch.zeros(5, 4)
    with pytest.raises(StateDictMismatchError) as info:
        load_trainable_state_dict(fresh, bad)
    assert info.value.missing == ["layers.0.attn.q_proj.lora_A.weight"]
    assert info.value.unexpected == ["layers.0.attn.k_proj.lora_A.weight"]
    assert [k for k, _, _ in info.value.shape_mismatches] == ["layers.1.attn.v_proj.lora_B.weight"]


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("family", DECODERS)
def test_generation_with_fused_weights_uses_the_adapters(family: str, dora: bool) -> None:
    """Generation's fused decode weights read each layer's ``weight``: the adapter must count."""
    model = apply_lora(tiny(family), LoraConfig(rank=4, alpha=32, use_dora=dora))
    randomise_adapters(model)
    prompt = ids()[:1, :5]
    fused = generate(model, prompt, max_new_tokens=6, fused_weights=True)
    plain = generate(model, prompt, max_new_tokens=6, fused_weights=False)
    merged = generate(merge_lora(model), prompt, max_new_tokens=6, fused_weights=False)
    assert torch.equal(fused, plain)
    assert torch.equal(plain, merged)


def test_merging_a_tied_weight_is_refused() -> None:
    model = apply_lora(
        tiny("llama", tie_embeddings=True), LoraConfig(targets=["lm_head", "q_proj"])
    )
    embed = model.embed.weight.clone()
    with pytest.raises(
        AdapterError, match=r"'lm_head' shares its weight with embed\.weight "
    ) as info:
        merge_lora(model)
    assert info.value.key == "lm_head"
    assert torch.equal(model.embed.weight, embed)  # nothing was folded in
    assert all(not layer.merged for layer in lora_layers(model).values())
