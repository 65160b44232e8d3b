"""``compile_decode=True``: decode steps through ``torch.compile`` give the eager tokens, and a
step that cannot be compiled falls back to the eager path with a warning, never an error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import lmhub
from lmhub.errors import GenerationError
from lmhub.generation import compiled
from lmhub.generation.compiled import CompileFallbackWarning, compile_failed

VOCAB = 259  # llama_tiny's byte vocabulary


@pytest.fixture
def model() -> nn.Module:
    hub = lmhub.get_model_hub("llama")
    torch.manual_seed(0)
    return hub.create_new_model(hub.get_arch_config("llama_tiny")).eval()


@pytest.fixture(autouse=True)
def fresh_compile_state() -> Iterator[None]:
    compiled.reset_compiled()
    yield
    compiled.reset_compiled()


def prompts(batch: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, 7), generator=torch.Generator().manual_seed(batch))


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True])
def test_compiled_decode_gives_the_eager_tokens(model: nn.Module, fused: bool) -> None:
    calls: list[int] = []
    real = compiled._compiled_last_logits

    def counting() -> Any:
        calls.append(1)
        return real()

    ids = prompts(2)
    eager = lmhub.generate(model, ids, max_new_tokens=12, fused_weights=fused)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiled, "_compiled_last_logits", counting)
        got = lmhub.generate(
            model, ids, max_new_tokens=12, fused_weights=fused, compile_decode=True
        )
    assert torch.equal(got, eager)
    assert len(calls) == 11  # every decode step (not the prefill) went through the compiled step
    assert not compile_failed(model)


def test_a_failing_compile_falls_back_to_eager_with_a_warning(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("inductor could not build the step\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    ids = prompts(3)
    eager = lmhub.generate(model, ids, max_new_tokens=6, fused_weights=False)
    with pytest.warns(CompileFallbackWarning, match="could not build the step"):
        got = lmhub.generate(model, ids, max_new_tokens=6, fused_weights=False, compile_decode=True)
    assert torch.equal(got, eager)
    assert compile_failed(model)


def test_a_step_failing_midway_leaves_the_cache_as_it_found_it(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failing "compiled" step runs part of the model (writing keys and advancing the cache)
    # before it raises: the eager rerun must still see the cache of before the step.
    def half_way(*args: Any) -> torch.Tensor:
        compiled.last_logits(*args)
        raise RuntimeError("lowering failed after the first graph ran")

    monkeypatch.setattr(compiled, "_compiled_last_logits", lambda: half_way)
    ids = prompts(2)
    eager = lmhub.generate(model, ids, max_new_tokens=5)
    with pytest.warns(CompileFallbackWarning):
        got = lmhub.generate(model, ids, max_new_tokens=5, compile_decode=True)
    assert torch.equal(got, eager)


def test_other_caches_run_eagerly(model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    def unexpected() -> Any:
        raise AssertionError("only static caches compile")

    monkeypatch.setattr(compiled, "_compiled_last_logits", unexpected)
    ids = prompts(1)
    for cache in ("dynamic", None):
        eager = lmhub.generate(model, ids, max_new_tokens=4, cache=cache)
        got = lmhub.generate(model, ids, max_new_tokens=4, cache=cache, compile_decode=True)
        assert torch.equal(got, eager)


def test_compile_decode_must_be_a_bool(model: nn.Module) -> None:
    with pytest.raises(GenerationError, match="compile_decode is 'yes'"):
        lmhub.generate(model, prompts(1), max_new_tokens=2, compile_decode="yes")  # type: ignore[arg-type]
