"""``compile: true``: per-layer torch.compile trains to the eager losses and gradients, skips
evaluation and decoding, and turns a failed compile into an lmhub error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lmhub.errors import CompileError
from lmhub.train.checkpointing import enable_gradient_checkpointing, find_layers
from lmhub.train.compile import compile_layers, is_compiled
from tests.train.helpers import metric_rows, tiny_config, write_text
from tests.train.test_model_test import loss_of, small_llama

pytestmark = pytest.mark.slow  # each test compiles a forward and a backward (about 10 s)


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("checkpointed", [False, True])
def test_compiled_layers_give_the_eager_loss_and_gradients(checkpointed: bool) -> None:
    torch.manual_seed(0)
    eager = small_llama().train()
    compiled = copy.deepcopy(eager)
    ids = torch.randint(0, 259, (2, 33))
    keys = list(compiled.state_dict())
    if checkpointed:
        enable_gradient_checkpointing(compiled)
    assert compile_layers(compiled) == 3
    assert compile_layers(compiled) == 3  # idempotent
    assert all(is_compiled(layer) for layer in find_layers(compiled))
    assert list(compiled.state_dict()) == keys

    loss_of(eager, ids).backward()
    for _ in range(2):  # the second call reuses the compiled graph
        compiled.zero_grad(set_to_none=True)
        got = loss_of(compiled, ids)
        got.backward()
        torch.testing.assert_close(got, loss_of(eager, ids).detach(), rtol=1e-5, atol=1e-5)
    expected = _grads(eager)
    assert set(_grads(compiled)) == set(expected)
    for name, grad in _grads(compiled).items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_evaluation_and_decoding_run_the_eager_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_llama().eval()
    compile_layers(model)
    layer = find_layers(model)[0]
    calls: list[Any] = []
    monkeypatch.setattr(torch, "compile", lambda *a, **k: calls.append(a))  # not reached
    ids = torch.randint(0, 259, (1, 8))
    with torch.no_grad():
        reference = copy.deepcopy(model)
        for block in find_layers(reference):
            del block.forward  # back to the class's forward
        torch.testing.assert_close(model(ids), reference(ids), rtol=0, atol=0)
    assert calls == []
    assert "forward" in vars(layer)


def test_a_failed_compile_is_an_lmhub_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.exc import Unsupported

    def broken(forward: Any, **_: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            raise Unsupported("no C++ compiler was found")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = small_llama().train()
    compile_layers(model)
    with pytest.raises(CompileError, match=r"layer 0 .*no C\+\+ compiler.*compile: false"):
        model(torch.randint(0, 259, (1, 8)))


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"model": "mixtral_tiny"},  # experts: float32 grouped_mm has no compiled form on CPU
        {"lora": {"rank": 4, "alpha": 8}},
    ],
    ids=["llama", "mixtral", "lora"],
)
def test_a_compiled_run_trains_to_the_eager_losses(tmp_path: Path, extra: dict[str, Any]) -> None:
    text = write_text(tmp_path)
    losses = {}
    for compiled in (False, True):
        out = tmp_path / f"compile-{compiled}"
        config = tiny_config(
            tmp_path, text, output_dir=str(out), max_steps=4, compile=compiled, **extra
        )
        from lmhub.train.run import build_trainer

        trainer, _ = build_trainer(config)
        trainer.fit()
        losses[compiled] = [r["loss"] for r in metric_rows(out)]
    assert len(losses[True]) == 4
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
