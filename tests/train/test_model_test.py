"""Gradient checkpointing, optimizer-in-backward and the `model test` runner.

Uses tests/fixtures/tinyshakespeare.txt (real text) and a SentencePiece model trained on it (a
tokenizer whose ids do not fit a byte-level model).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lmhub.errors import ModelNotKnownError, NonFiniteLossError, TokenizerError
from lmhub.models.hub import get_model_hub
from lmhub.train.checkpointing import (
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
    find_layers,
)
from lmhub.train.memory import peak_memory_bytes, reset_peak_memory
from lmhub.train.model_test import ModelTestOptions, resolve_model, run_model_test
from lmhub.train.optim_in_backward import fuse_optimizer_with_backward
from tests.fixtures import SENTENCEPIECE_VOCAB_SIZE, SHAKESPEARE


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny matmuls are many times faster on one thread than fighting over two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_llama(**overrides: object) -> nn.Module:
    hub = get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    config.model_dim, config.num_layers, config.ffn_inner_dim = 64, 3, 96
    config.num_heads, config.num_kv_heads = 4, 2
    for name, value in overrides.items():
        setattr(config, name, value)
    return hub.create_new_model(config)


def loss_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = model(ids[:, :-1])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


# -- gradient checkpointing ---------------------------------------------------------------------


def test_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    # Dropout is on: checkpointing must replay the same random masks in the recomputation.
    model = small_llama(dropout_p=0.2).train()
    ids = torch.randint(0, 259, (2, 33))

    torch.manual_seed(1)
    plain_loss = loss_of(model, ids)
    plain_loss.backward()
    plain_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    calls = []
    handle = find_layers(model)[0].attn.register_forward_hook(lambda *_: calls.append(1))
    keys = list(model.state_dict())
    assert enable_gradient_checkpointing(model) == 3
    assert enable_gradient_checkpointing(model) == 3  # idempotent: no double wrapping
    torch.manual_seed(1)
    ckpt_loss = loss_of(model, ids)
    assert len(calls) == 1
    ckpt_loss.backward()
    assert len(calls) == 2  # the layer really was recomputed in the backward pass
    handle.remove()

    assert list(model.state_dict()) == keys
    torch.testing.assert_close(ckpt_loss, plain_loss, rtol=0, atol=0)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, plain_grads[name], rtol=0, atol=1e-7, msg=name)

    disable_gradient_checkpointing(model)
    assert "forward" not in vars(find_layers(model)[0])


def test_gradient_checkpointing_is_skipped_without_grad() -> None:
    model = small_llama().eval()
    enable_gradient_checkpointing(model)
    ids = torch.randint(0, 259, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), small_llama_copy_logits(model, ids))


def small_llama_copy_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    clone = copy.deepcopy(model)
    disable_gradient_checkpointing(clone)
    return clone(ids)


# -- optimizer in backward ----------------------------------------------------------------------

# foreach=False: both sides run the same per-tensor kernels, so the weights match bit for bit.
OPTIMIZERS: dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01, foreach=False),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=False),
}


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_in_backward_matches_an_ordinary_step(name: str, tied: bool) -> None:
    factory = OPTIMIZERS[name]
    reference = small_llama(tie_embeddings=tied).train()
    fused_model = copy.deepcopy(reference)
    reference_opt = factory(list(reference.parameters()))
    fused = fuse_optimizer_with_backward(fused_model, factory)
    assert len(fused.optimizers) == len(list(reference.parameters()))

    for step in range(3):
        ids = torch.randint(0, 259, (2, 17), generator=torch.Generator().manual_seed(step))
        loss_of(reference, ids).backward()
        reference_opt.step()
        reference_opt.zero_grad(set_to_none=True)

        loss_of(fused_model, ids).backward()
        # Every parameter was stepped inside backward and its gradient freed right away.
        assert all(p.grad is None for p in fused_model.parameters())
        fused.step()
        fused.zero_grad()

    for (n, a), (_, b) in zip(reference.named_parameters(), fused_model.named_parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=n)
    if tied:
        assert fused_model.lm_head.weight is fused_model.embed.weight
    assert set(fused.state_dict()) == set(fused.optimizers)

    fused.remove()
    before = [p.detach().clone() for p in fused_model.parameters()]
    loss_of(fused_model, torch.randint(0, 259, (1, 9))).backward()
    assert all(p.grad is not None for p in fused_model.parameters())  # hooks are gone
    assert all(torch.equal(a, p) for a, p in zip(before, fused_model.parameters()))


def test_set_lr_reaches_every_optimizer() -> None:
    fused = fuse_optimizer_with_backward(small_llama(), OPTIMIZERS["adamw"])
    fused.set_lr(0.5)
    assert {g["lr"] for o in fused.optimizers.values() for g in o.param_groups} == {0.5}


def test_peak_memory_probe_sees_a_large_allocation() -> None:
    device = torch.device("cpu")
    reset_peak_memory(device)
    block = torch.ones(48 * 2**20 // 4)  # 48 MiB, touched
    assert peak_memory_bytes(device) >= block.numel() * 4


# -- the runner ---------------------------------------------------------------------------------


def test_run_model_test_on_random_tokens() -> None:
    lines: list[str] = []
    result = run_model_test(
        "llama_tiny", ModelTestOptions(steps=2, sequence_length=16), echo=lines.append
    )
    model = resolve_model("llama_tiny").model
    assert len(result.losses) == 2
    assert all(4.0 < loss < 7.0 for loss in result.losses)  # ~ln(259) = 5.56 at random init
    assert result.logits_shape == (2, 16, 259)
    assert result.num_parameters == sum(p.numel() for p in model.parameters())
    assert result.tokens_per_second > 0 and result.peak_memory_bytes > 0
    text = "\n".join(lines)
    for needle in ("step 1/2: loss", "logits shape: (2, 16, 259)", "tokens/s", "peak memory"):
        assert needle in text
    assert lines[-1] == "Test Completed"


def test_run_model_test_on_text_with_all_options() -> None:
    # tinyshakespeare through the byte tokenizer; a model given as a module keeps no wrappers.
    model = small_llama()
    options = ModelTestOptions(
        steps=3,
        sequence_length=24,
        lr=3e-3,
        data=SHAKESPEARE,
        gradient_checkpointing=True,
        fuse_optim_with_backward=True,
    )
    result = run_model_test(model, options, echo=lambda _: None)
    assert len(result.losses) == 3 and result.logits_shape == (2, 24, 259)
    assert all("forward" not in vars(layer) for layer in find_layers(model))
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())  # type: ignore[attr-defined]


def test_text_data_must_fit_the_vocabulary(sp_model_file: Path) -> None:
    assert SENTENCEPIECE_VOCAB_SIZE > 259
    options = ModelTestOptions(
        steps=1, sequence_length=8, data=SHAKESPEARE, tokenizer=str(sp_model_file)
    )
    with pytest.raises(TokenizerError, match="vocabulary has only 259"):
        run_model_test(small_llama(), options, echo=lambda _: None)


def test_non_finite_loss_stops_with_a_clear_error() -> None:
    options = ModelTestOptions(steps=4, sequence_length=16, lr=1e30, optimizer="sgd")
    with pytest.raises(NonFiniteLossError, match="step 2 is nan") as info:
        run_model_test("llama_tiny", options, echo=lambda _: None)
    assert info.value.step == 2


def test_resolve_model_from_checkpoint_dir_and_card(tmp_path: Path) -> None:
    from tests.oracle.hf_models import save_tiny_hf_llama

    save_tiny_hf_llama(tmp_path / "ckpt")
    resolved = resolve_model(str(tmp_path / "ckpt"))
    assert resolved.model.config.vocab_size == 160
    assert resolved.tokenizer_source is None  # the directory holds no tokenizer files

    cards = Path(str(tmp_path / "cards"))
    cards.mkdir()
    (cards / "mine.yaml").write_text(
        "name: my_tiny\nmodel_family: llama\nmodel_arch: llama_tiny\n"
        "model_config: {num_layers: 1}\n"
    )
    import lmhub

    lmhub.register_cards(cards)
    resolved = resolve_model("my_tiny")
    assert len(find_layers(resolved.model)) == 1 and "random weights" in resolved.label

    with pytest.raises(ModelNotKnownError, match="llama_tiy"):
        resolve_model("llama_tiy")
