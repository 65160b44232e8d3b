"""The forward contract of every registered encoder-decoder family (``kind ==
"encoder_decoder"``), the counterpart of the causal-decoder half of
tests/models/test_family_contract.py (whose config, preset and card tests cover all families):
finite logits in fp32 and bf16, a causal decoder over a bidirectional encoder, source padding on
either side, eager == sdpa, cached decoding, tied embeddings through a save and load, and a
training step that learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.nn.encdec_cache import EncoderDecoderCache

FAMILIES = [f for f in lmhub.list_families() if lmhub.get_family(f).kind == "encoder_decoder"]
VOCAB = 97
ATOL = 1e-5
SHRINK: dict[str, object] = {
    "model_dim": 64,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "num_heads": 4,
    "num_decoder_heads": 4,
    "ffn_inner_dim": 96,
    "vocab_size": VOCAB,
    "bos_token_id": VOCAB - 4,
    "eos_token_id": VOCAB - 3,
    "decoder_start_token_id": VOCAB - 2,
    "pad_token_id": VOCAB - 1,
}


def test_both_encoder_decoder_families_are_registered() -> None:
    assert {"t5", "transformer"} <= set(FAMILIES)


def small_model(family: str, **overrides: object) -> Any:
    hub = lmhub.get_model_hub(family)
    config = hub.get_arch_config(f"{family}_tiny")
    fields = set(vars(config))
    shrink = {k: v for k, v in SHRINK.items() if k in fields}
    return hub.create_new_model(lmhub.apply_overrides(config, {**shrink, **overrides})).eval()


def ids(batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB - 4, (batch, seq), generator=torch.Generator().manual_seed(seed))


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_logits_are_finite(family: str, dtype: torch.dtype) -> None:
    model = small_model(family).to(dtype)
    with torch.no_grad():
        logits = model(ids(2, 7), decoder_input_ids=ids(2, 5, 1))
        hidden = model(ids(2, 7), decoder_input_ids=ids(2, 5, 1), return_hidden=True)
    assert logits.shape == (2, 5, VOCAB) and logits.dtype == dtype
    assert torch.isfinite(logits).all()
    assert hidden.shape == (2, 5, 64)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_without_decoder_inputs_says_what_to_pass(family: str) -> None:
    with pytest.raises(ConfigError, match="decoder_input_ids") as info:
        small_model(family)(ids(1, 4))
    assert info.value.field == "decoder_input_ids"


@pytest.mark.parametrize("family", FAMILIES)
def test_decoder_is_causal_and_encoder_bidirectional(family: str) -> None:
    model = small_model(family)
    src, tgt = ids(2, 9), ids(2, 8, 1)
    with torch.no_grad():
        base = model(src, decoder_input_ids=tgt)
        later_tgt = tgt.clone()
        later_tgt[:, 5] = (later_tgt[:, 5] + 1) % (VOCAB - 4)
        changed = model(src, decoder_input_ids=later_tgt)
        assert diff(base[:, :5], changed[:, :5]) <= 1e-6
        assert diff(base[:, 5:], changed[:, 5:]) > 1e-3
        last_src = src.clone()
        last_src[:, -1] = (last_src[:, -1] + 1) % (VOCAB - 4)
        # The last source token reaches every target position.
        assert (model(last_src, decoder_input_ids=tgt) - base).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_sources_give_the_logits_of_each_source_alone(
    family: str, attn_impl: str, side: str
) -> None:
    model = small_model(family, attn_impl=attn_impl)
    lengths = (9, 4, 1)
    src = torch.full((3, 9), VOCAB - 1)
    mask = torch.zeros(3, 9, dtype=torch.long)
    tgt = ids(3, 6, 1)
    seqs = [ids(1, n, 2 + n)[0] for n in lengths]
    for row, seq in enumerate(seqs):
        cols = slice(9 - len(seq), 9) if side == "left" else slice(0, len(seq))
        src[row, cols], mask[row, cols] = seq, 1
    with torch.no_grad():
        batched = model(src, decoder_input_ids=tgt, attention_mask=mask)
        for row, seq in enumerate(seqs):
            alone = model(seq[None], decoder_input_ids=tgt[row : row + 1])
            assert diff(batched[row], alone[0]) <= ATOL


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_and_sdpa_agree(family: str) -> None:
    eager, sdpa = small_model(family, attn_impl="eager"), small_model(family, attn_impl="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    src, tgt = ids(2, 11), ids(2, 7, 1)
    mask = torch.ones_like(src)
    mask[1, 6:] = 0
    with torch.no_grad():
        a = eager(src, decoder_input_ids=tgt, attention_mask=mask)
        b = sdpa(src, decoder_input_ids=tgt, attention_mask=mask)
    assert diff(a, b) <= ATOL


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_decoding_equals_the_full_forward(family: str) -> None:
    model = small_model(family)
    src, tgt = ids(3, 10), ids(3, 9, 1)
    mask = torch.ones_like(src)
    mask[2, 4:] = 0
    with torch.no_grad():
        memory = model.encode(src, attention_mask=mask)
        full = model.decode(tgt, memory, memory_mask=mask)
        cache = EncoderDecoderCache()
        steps = [model.decode(tgt[:, :4], memory, memory_mask=mask, cache=cache)]
        for t in range(4, 9):
            steps.append(model.decode(tgt[:, t : t + 1], memory, memory_mask=mask, cache=cache))
    assert cache.seq_len == 9
    assert diff(torch.cat(steps, dim=1), full) <= ATOL


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("family", FAMILIES)
def test_tied_embeddings_survive_save_and_load(family: str, tie: bool, tmp_path: Path) -> None:
    model = small_model(family, tie_embeddings=tie)
    assert (model.lm_head.weight is model.embed.weight) == tie
    lmhub.save_checkpoint(tmp_path, model)
    hub = lmhub.get_model_hub(family)
    loaded = hub.load_custom_model(tmp_path, model.config, progress=False).eval()
    assert (loaded.lm_head.weight is loaded.embed.weight) == tie
    src, tgt = ids(2, 6), ids(2, 4, 1)
    with torch.no_grad():
        assert torch.equal(loaded(src, decoder_input_ids=tgt), model(src, decoder_input_ids=tgt))


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_reduces_the_loss(family: str) -> None:
    model = small_model(family).train()
    src, labels = ids(4, 12), ids(4, 10, 1)

    def loss_fn() -> torch.Tensor:
        logits = model(src, labels=labels)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())

    before = loss_fn()
    before.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if not name.endswith("k_proj.bias"):  # softmax ignores a key bias (see the decoders')
            assert p.grad.abs().sum() > 0, name
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
        after = loss_fn()
    assert after.item() < before.item()


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_covers_both_stacks_and_keeps_the_gradients(family: str) -> None:
    from lmhub.train.checkpointing import enable_gradient_checkpointing

    model = small_model(family).train()
    src, labels = ids(2, 8), ids(2, 6, 1)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.nn.functional.cross_entropy(
            model(src, labels=labels).flatten(0, 1), labels.flatten()
        ).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    assert enable_gradient_checkpointing(model) == 4  # 2 encoder + 2 decoder layers
    checkpointed = grads()
    assert all(torch.allclose(plain[n], checkpointed[n], atol=1e-6) for n in plain)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapts_both_stacks_and_merges_exactly(family: str) -> None:
    from lmhub.peft import LoraConfig, apply_lora, lora_layers, merge_lora

    model = small_model(family)
    src, tgt = ids(2, 8), ids(2, 5, 1)
    with torch.no_grad():
        base = model(src, decoder_input_ids=tgt)
    apply_lora(model, LoraConfig(rank=4, alpha=8))
    names = list(lora_layers(model))
    assert any(n.startswith("encoder.") for n in names)
    assert any(".cross_attn." in n for n in names)
    with torch.no_grad():
        assert torch.equal(model(src, decoder_input_ids=tgt), base)  # B starts at zero
        for layer in lora_layers(model).values():
            layer.lora_B.weight.normal_(std=0.1)
        adapted = model(src, decoder_input_ids=tgt)
    assert diff(adapted, base) > 1e-3
    merge_lora(model)
    assert not lora_layers(model)
    with torch.no_grad():
        assert diff(model(src, decoder_input_ids=tgt), adapted) <= 1e-5
