"""The contract every registered model family keeps, checked once for all of them.

Each test is parametrised over ``lmhub.list_families()`` (read at collection time), so a new
family is held to the same rules as soon as it is registered: exact config round trips, meta
builds of every preset, finite logits in fp32 and bf16, causality, left padding, eager == sdpa,
incremental decoding with a KV cache, tied embeddings that survive a save and load,
``return_hidden`` and a training step that learns. Family-specific behaviour (ALiBi slopes,
sinusoids, init schemes, layer formulas) stays in the family's own test module.

Where the contract depends on what a model is, it branches on ``ModelFamily.kind``, never on
names: a causal decoder must not look ahead and is padded on the left; a bidirectional encoder
must look both ways and is padded on the right (its absolute positions count from the first
column, as transformers' BERT counts them). Encoder-decoders read two sequences, so the forward
and weight tests here cover the single-stack kinds; tests/encdec/test_contract.py holds theirs.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.nn.kv_cache import DynamicKVCache

FAMILIES = lmhub.list_families()
DECODERS = [f for f in FAMILIES if lmhub.get_family(f).kind == "decoder"]
ENCODERS = [f for f in FAMILIES if lmhub.get_family(f).kind == "encoder"]
SINGLE_STACK = DECODERS + ENCODERS
"""The families called as ``model(input_ids)``: every kind but encoder-decoders."""
KV_CACHE_FAMILIES = [f for f in SINGLE_STACK if lmhub.get_family(f).model_class.supports_kv_cache]
PRESETS = [(f, arch) for f in FAMILIES for arch in lmhub.get_model_hub(f).get_archs()]

ATOL = 1e-5
VOCAB = 97

# Shrinks each family's `<family>_tiny` preset so a forward takes about a millisecond. Only the
# fields a family has are applied; a family not listed here gets DEFAULT_SHRINK.
DEFAULT_SHRINK: dict[str, object] = {
    "model_dim": 64,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "ffn_inner_dim": 96,
    "vocab_size": VOCAB,
    "max_seq_len": 64,
    "bos_token_id": VOCAB - 3,
    "eos_token_id": VOCAB - 2,
    "pad_token_id": VOCAB - 1,
}
SHRINK: dict[str, dict[str, object]] = {
    "llama": DEFAULT_SHRINK,
    "deepone": DEFAULT_SHRINK,
    "causal_lm": {**DEFAULT_SHRINK, "ffn_inner_dim": 128},  # plain MHA: no num_kv_heads
    "single_head": {**DEFAULT_SHRINK, "model_dim": 48},  # one head of width model_dim
    # Latent attention: a key/value per head, heads qk_nope + qk_rope = model_dim / heads wide.
    "deepseek_v3": {
        **DEFAULT_SHRINK,
        "num_kv_heads": 4,
        "head_dim": None,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "v_head_dim": 8,
        "q_lora_rank": 32,
        "kv_lora_rank": 16,
    },
    # Sliding and global layers of different head widths, the last two sharing the first two's
    # keys and values, per-layer embeddings over the shrunk vocabulary.
    "gemma4": {
        **DEFAULT_SHRINK,
        "num_layers": 4,
        "layer_types": ["sliding", "full", "sliding", "full"],
        "num_kv_shared_layers": 2,
        "head_dim": None,
        "global_head_dim": 32,
        "per_layer_vocab_size": VOCAB,
    },
    # Hybrid: one linear-attention layer and one full one (heads of their own width).
    "qwen3_5": {
        **DEFAULT_SHRINK,
        "mixer_types": ["linear", "full"],
        "head_dim": None,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 8,
    },
}

# Values `validate()` must reject, each with the field it must name. The common checks apply to
# every family that has the fields; "head_dim" is blamed where the family has that field.
BAD_VALUES: list[tuple[dict[str, object], str]] = [
    ({"attn_impl": "flash"}, "attn_impl"),
    ({"num_layers": 0}, "num_layers"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"model_dim": -64}, "model_dim"),
    ({"dropout_p": 1.0}, "dropout_p"),
    ({"num_heads": 4, "num_kv_heads": 3}, "num_kv_heads"),
    ({"model_dim": 66, "num_heads": 4}, "head_dim"),
]


def config_fields(family: str) -> set[str]:
    return {f.name for f in dataclasses.fields(lmhub.get_family(family).config_class)}


def bad_value_cases() -> list[Any]:
    cases = []
    for family in FAMILIES:
        fields = config_fields(family)
        for overrides, field in BAD_VALUES:
            if not set(overrides) <= fields:
                continue
            blamed = "num_heads" if field == "head_dim" and field not in fields else field
            cases.append(pytest.param(family, overrides, blamed, id=f"{family}-{field}"))
    return cases


# A preset named `..._<N>m` should hold about N million parameters.
NOMINAL_MILLIONS = re.compile(r"_(\d+)m$")


def hub(family: str) -> lmhub.ModelHub[Any, Any]:
    return lmhub.get_model_hub(family)


def small_config(family: str, **overrides: object) -> Any:
    """The family's tiny preset, shrunk, with ``overrides`` on top."""
    config = hub(family).get_arch_config(f"{family}_tiny")
    fields = config_fields(family)
    shrink = {k: v for k, v in SHRINK.get(family, DEFAULT_SHRINK).items() if k in fields}
    return lmhub.apply_overrides(config, {**shrink, **overrides})


def small_model(family: str, **overrides: object) -> torch.nn.Module:
    return hub(family).create_new_model(small_config(family, **overrides)).eval()


def random_ids(batch: int, seq: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq))


def left_padded(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(ids, attention_mask)`` with the sequences right-aligned and zeros in front."""
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq) :] = seq
        mask[row, width - len(seq) :] = 1
    return ids, mask


def right_padded(seqs: list[torch.Tensor], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(ids, attention_mask)`` with the sequences left-aligned and ``pad`` after them."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "arch"), PRESETS)
def test_config_round_trips_exactly(family: str, arch: str) -> None:
    cls = lmhub.get_family(family).config_class
    config = hub(family).get_arch_config(arch)
    assert lmhub.from_yaml(cls, lmhub.to_yaml(config)) == config
    assert lmhub.from_json(cls, lmhub.to_json(config)) == config
    assert lmhub.from_dict(cls, lmhub.to_dict(config)) == config


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_overrides_name_the_field(family: str) -> None:
    config = small_config(family)
    with pytest.raises(ConfigError, match="num_layrs") as info:
        lmhub.apply_overrides(config, ["num_layrs=2"])
    assert info.value.field == "num_layrs"
    with pytest.raises(ConfigError, match="expects int") as info:
        lmhub.apply_overrides(config, {"num_layers": "many"})
    assert info.value.field == "num_layers"


@pytest.mark.parametrize(("family", "overrides", "field"), bad_value_cases())
def test_validate_names_the_bad_field(
    family: str, overrides: dict[str, object], field: str
) -> None:
    config = lmhub.apply_overrides(small_config(family), overrides)
    with pytest.raises(ConfigError, match=field) as info:
        config.validate()
    assert info.value.field == field
    with pytest.raises(ConfigError, match=field):
        hub(family).create_new_model(config, meta=True)


# -- presets and cards ------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "arch"), PRESETS)
def test_every_preset_builds_on_meta(family: str, arch: str) -> None:
    model = hub(family).create_new_model(hub(family).get_arch_config(arch), meta=True)
    assert isinstance(model, lmhub.get_family(family).model_class)
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())
    nominal = NOMINAL_MILLIONS.search(arch)
    if nominal:
        count = sum(p.numel() for p in model.parameters())
        assert count == pytest.approx(int(nominal.group(1)) * 1e6, rel=0.3)


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_preset_has_a_few_million_parameters(family: str) -> None:
    assert f"{family}_tiny" in hub(family).get_archs()
    model = hub(family).create_new_model(hub(family).get_arch_config(f"{family}_tiny"), meta=True)
    assert 1e6 <= sum(p.numel() for p in model.parameters()) <= 10e6


@pytest.mark.parametrize("family", FAMILIES)
def test_every_preset_has_a_card_that_resolves_to_it(family: str) -> None:
    cards = list(hub(family).iter_cards())
    assert {c.model_arch for c in cards} >= set(hub(family).get_archs())
    for card in cards:
        config = hub(family).get_model_config(card)
        assert isinstance(config, lmhub.get_family(family).config_class)
        config.validate()


# -- forward ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", SINGLE_STACK)
def test_create_new_model_gives_finite_logits(family: str, dtype: torch.dtype) -> None:
    config = small_config(family)
    model = hub(family).create_new_model(config, device="cpu", dtype=dtype).eval()
    assert torch.get_default_dtype() == torch.float32
    assert {p.dtype for p in model.parameters()} == {dtype}
    with torch.no_grad():
        logits = model(random_ids(2, 7))
        hidden = model(random_ids(2, 7), return_hidden=True)
    assert logits.shape == (2, 7, config.vocab_size) and logits.dtype == dtype
    assert torch.isfinite(logits).all()
    assert hidden.shape == (2, 7, config.model_dim)


@pytest.mark.parametrize("family", DECODERS)
def test_future_tokens_do_not_change_earlier_logits(family: str) -> None:
    model = small_model(family)
    ids = random_ids(2, 12)
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert max_diff(a[:, :7], b[:, :7]) <= 1e-6
    assert max_diff(a[:, 7:], b[:, 7:]) > 1e-3


@pytest.mark.parametrize("family", ENCODERS)
def test_every_token_changes_the_logits_on_both_sides(family: str) -> None:
    model = small_model(family)
    ids = random_ids(2, 12)
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(ids), model(changed)
    # Far above rounding (~1e-7), though small: the inits scale the residual writes down.
    assert max_diff(a[:, :7], b[:, :7]) > 1e-5
    assert max_diff(a[:, 8:], b[:, 8:]) > 1e-5


@pytest.mark.parametrize("family", SINGLE_STACK)
def test_bidirectional_mode_lets_earlier_positions_see_later_tokens(family: str) -> None:
    model = small_model(family)
    ids = random_ids(2, 12)
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(ids, causal=False), model(changed, causal=False)
        causal = model(ids, causal=True)
    # Position 6 is next to the change, so even a sliding window covers it.
    assert max_diff(a[:, 6], b[:, 6]) > 1e-5  # the causal test bounds the unaffected by 1e-6
    assert max_diff(a, causal) > 1e-5


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", SINGLE_STACK)
def test_bidirectional_mode_ignores_padding_keys(family: str, attn_impl: str) -> None:
    model = small_model(family, attn_impl=attn_impl)
    seqs = [random_ids(1, n)[0] for n in (9, 5)]
    ids = torch.zeros(2, 9, dtype=torch.long)
    mask = torch.zeros(2, 9, dtype=torch.long)
    for row, seq in enumerate(seqs):  # right padding: real tokens keep positions 0..n-1
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask, causal=False)
        for row, seq in enumerate(seqs):
            alone = model(seq[None], causal=False)[0]
            assert max_diff(batched[row, : len(seq)], alone) <= ATOL


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", ENCODERS)
def test_right_padding_gives_the_logits_of_each_sequence_alone(family: str, attn_impl: str) -> None:
    model = small_model(family, attn_impl=attn_impl)
    seqs = [random_ids(1, n)[0] % (VOCAB - 1) for n in (9, 4, 1)]  # no pad ids inside
    ids, mask = right_padded(seqs, VOCAB - 1)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        for row, seq in enumerate(seqs):
            alone = model(seq[None])[0]
            assert max_diff(batched[row, : len(seq)], alone) <= ATOL
    assert torch.isfinite(batched).all()


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", DECODERS)
def test_left_padding_gives_the_logits_of_each_sequence_alone(family: str, attn_impl: str) -> None:
    model = small_model(family, attn_impl=attn_impl)
    seqs = [random_ids(1, n)[0] for n in (9, 4, 1)]
    ids, mask = left_padded(seqs)
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        for row, seq in enumerate(seqs):
            alone = model(seq[None])[0]
            assert max_diff(batched[row, ids.shape[1] - len(seq) :], alone) <= ATOL
    assert torch.isfinite(batched).all()


@pytest.mark.parametrize("family", SINGLE_STACK)
def test_eager_and_sdpa_give_the_same_logits(family: str) -> None:
    eager = small_model(family, attn_impl="eager")
    sdpa = small_model(family, attn_impl="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids, mask = left_padded([random_ids(1, 20)[0], random_ids(1, 13)[0]])
    with torch.no_grad():
        assert max_diff(eager(ids), sdpa(ids)) <= ATOL
        real = mask.bool()
        got, want = sdpa(ids, attention_mask=mask), eager(ids, attention_mask=mask)
        assert max_diff(got[real], want[real]) <= ATOL


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("family", KV_CACHE_FAMILIES)
def test_incremental_decoding_equals_the_full_forward(family: str, padded: bool) -> None:
    model = small_model(family)
    ids = random_ids(3, 11)
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :3] = 0
        mask[2, :7] = 0  # more padding than the prefill: its first step sees padding only
    step_mask = (lambda t: mask[:, :t]) if padded else (lambda t: None)
    with torch.no_grad():
        full = model(ids, attention_mask=step_mask(11))
        cache = DynamicKVCache()
        steps = [model(ids[:, :5], attention_mask=step_mask(5), cache=cache)]
        for t in range(5, 11):
            steps.append(model(ids[:, t : t + 1], attention_mask=step_mask(t + 1), cache=cache))
    assert cache.seq_len == 11
    real = mask.bool()
    assert max_diff(torch.cat(steps, dim=1)[real], full[real]) <= ATOL


# -- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", SINGLE_STACK)
def test_tied_embeddings_survive_save_and_load(family: str, tie: bool, tmp_path: Path) -> None:
    config = small_config(family, tie_embeddings=tie)
    model = hub(family).create_new_model(config).eval()

    def shares_storage(m: torch.nn.Module) -> bool:
        head, embed = m.lm_head.weight, m.embed.weight
        same = head.data_ptr() == embed.data_ptr()
        assert same == (head is embed)
        return same

    assert shares_storage(model) == tie
    lmhub.save_checkpoint(tmp_path, model)
    loaded = hub(family).load_custom_model(tmp_path, config, progress=False).eval()
    assert shares_storage(loaded) == tie
    ids = random_ids(2, 6)
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


@pytest.mark.parametrize("family", SINGLE_STACK)
def test_one_training_step_reduces_the_loss(family: str) -> None:
    model = small_model(family).train()
    ids = random_ids(4, 16)

    def loss_fn() -> torch.Tensor:
        logits = model(ids[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    before = loss_fn()
    assert torch.isfinite(before)
    before.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, name
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # A key bias adds the same q·b to every score of a query, which softmax ignores, so its
        # gradient is zero up to rounding. Everything else must get a real one.
        if not name.endswith("k_proj.bias"):
            assert p.grad.abs().sum() > 0, name
    # Plain SGD by hand: constructing a torch.optim optimizer imports torch._dynamo (~1.5 s).
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
        after = loss_fn()
    assert after.item() < before.item()
