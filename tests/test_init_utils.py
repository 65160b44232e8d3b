"""lmhub.no_init_weights and lmhub.default_dtype: effect inside, restore on exit/error/nesting."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.init import xavier_normal_  # a direct binding, not patchable by attribute

import lmhub
from lmhub.models.materialize import build_on_meta

INIT_NAMES = ("normal_", "uniform_", "ones_", "zeros_", "xavier_normal_", "kaiming_uniform_")


def _originals() -> dict[str, object]:
    return {name: getattr(nn.init, name) for name in INIT_NAMES}


def _filled(value: float, *shape: int) -> nn.Parameter:
    return nn.Parameter(torch.full(shape, value))


def test_no_init_weights_skips_every_initialiser_on_parameters() -> None:
    p = _filled(7.0, 4, 4)
    layer = nn.Linear(4, 4)
    with torch.no_grad():
        layer.weight.fill_(3.0)
    with lmhub.no_init_weights():
        nn.init.normal_(p)
        nn.init.kaiming_uniform_(p)
        xavier_normal_(p)
        with torch.no_grad():
            p.normal_()
            p.fill_(1.0)
        layer.reset_parameters()
        plain = torch.zeros(3)
        plain.fill_(2.0)  # ordinary tensors are untouched by the block
    assert torch.equal(p, torch.full((4, 4), 7.0))
    assert torch.equal(layer.weight, torch.full((4, 4), 3.0))
    assert torch.equal(plain, torch.full((3,), 2.0))


def test_no_init_weights_leaves_a_materialised_lmhub_model_as_allocated() -> None:
    config = lmhub.get_model_hub("llama").get_arch_config("llama_tiny")
    config.num_layers = 1
    model = build_on_meta(lmhub.get_family("llama").builder, config, torch.float32)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
    with lmhub.no_init_weights():
        model.reset_parameters()
    assert all(bool((p == 7.0).all()) for p in model.parameters())
    model.reset_parameters()  # outside the block, init works again
    assert not bool((model.embed.weight == 7.0).all())


def test_no_init_weights_restores_on_exit_error_and_nesting() -> None:
    before = _originals()
    with lmhub.no_init_weights():
        patched = _originals()
        assert all(patched[n] is not before[n] for n in INIT_NAMES)
        with lmhub.no_init_weights():
            pass
        assert _originals() == patched  # the inner exit keeps the outer block in force
        p = _filled(1.0, 3)
        nn.init.normal_(p)
        assert torch.equal(p, torch.ones(3))
    assert _originals() == before
    with pytest.raises(RuntimeError, match="boom"), lmhub.no_init_weights():
        raise RuntimeError("boom")
    assert _originals() == before
    p = _filled(1.0, 64)
    with torch.no_grad():
        p.normal_()
    assert not torch.equal(p, torch.ones(64))


def test_default_dtype_sets_and_restores() -> None:
    start = torch.get_default_dtype()
    with lmhub.default_dtype(torch.bfloat16):
        assert torch.empty(1).dtype == torch.bfloat16
        with lmhub.default_dtype("float64"):
            assert torch.empty(1).dtype == torch.float64
        assert torch.empty(1).dtype == torch.bfloat16
        with lmhub.default_dtype(None):
            assert torch.empty(1).dtype == torch.bfloat16
    assert torch.get_default_dtype() == start
    with pytest.raises(ValueError, match="boom"), lmhub.default_dtype("fp16"):
        assert torch.empty(1).dtype == torch.float16
        raise ValueError("boom")
    assert torch.get_default_dtype() == start


def test_default_dtype_rejects_unknown_names() -> None:
    with pytest.raises(lmhub.ConfigError, match="not a known dtype"), lmhub.default_dtype("int7"):
        pass
    assert torch.get_default_dtype() == torch.float32
