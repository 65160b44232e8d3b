"""adaLN-zero conditioning wraps a built decoder from outside (llama: pre-norm; deepone:
post-norm), starts as the unconditioned model, and then depends on the noise level."""

from __future__ import annotations

import pytest
import torch

from lmhub.errors import ConfigError
from lmhub.nn.adaln import AdaLNZero, timestep_frequencies
from lmhub.train.checkpointing import enable_gradient_checkpointing
from tests.lm.models import tiny_model

FAMILIES = ["llama", "deepone"]


def _ids() -> torch.Tensor:
    return torch.tensor([[5, 9, 3, 7, 1], [2, 4, 6, 8, 0]])


@pytest.mark.parametrize("family", FAMILIES)
def test_starts_as_the_unconditioned_bidirectional_model(family: str) -> None:
    backbone = tiny_model(family)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    expected = backbone(_ids(), attention_mask=mask, causal=False)
    state_keys = set(backbone.state_dict())
    model = AdaLNZero(backbone, cond_dim=16)
    got = model(_ids(), sigma=torch.tensor([0.1, 3.0]), attention_mask=mask)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert set(backbone.state_dict()) == state_keys  # the family's keys are untouched


def _perturbed(model: AdaLNZero) -> AdaLNZero:
    with torch.no_grad():
        for linear in (*model.layer_modulation, model.final_modulation):
            linear.weight.normal_(std=0.5)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_output_depends_on_sigma_once_trained(family: str) -> None:
    torch.manual_seed(0)
    model = _perturbed(AdaLNZero(tiny_model(family), cond_dim=16))
    ids = _ids()
    low = model(ids, sigma=torch.tensor(0.1))
    high = model(ids, sigma=torch.tensor(2.0))
    assert (low - high).abs().max() > 1e-3
    # each row is conditioned on its own sigma
    mixed = model(ids, sigma=torch.tensor([0.1, 2.0]))
    torch.testing.assert_close(mixed[0], low[0])
    torch.testing.assert_close(mixed[1], high[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_every_layer_is_modulated_and_gradients_reach_every_parameter(family: str) -> None:
    torch.manual_seed(0)
    model = _perturbed(AdaLNZero(tiny_model(family), cond_dim=16))
    loss = model(_ids(), sigma=torch.tensor([0.5, 1.5])).logsumexp(-1).mean()
    loss.backward()
    params = [*model.named_parameters(), *model.backbone.named_parameters()]
    missing = [n for n, p in params if p.grad is None or not p.grad.any()]
    assert missing == []


def test_holds_the_backbone_by_reference() -> None:
    backbone = tiny_model("llama")
    model = AdaLNZero(backbone, cond_dim=16)
    assert model.backbone is backbone
    assert not any(k.startswith("backbone") for k in model.state_dict())
    own = {id(p) for p in model.parameters()}
    assert own.isdisjoint(id(p) for p in backbone.parameters())


def test_zero_init_modulation_still_gets_gradients() -> None:
    model = AdaLNZero(tiny_model("llama"), cond_dim=16)
    model(_ids(), sigma=torch.tensor([0.5, 1.5])).logsumexp(-1).mean().backward()
    for linear in (*model.layer_modulation, model.final_modulation):
        assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients(family: str) -> None:
    def grads(checkpointed: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = _perturbed(AdaLNZero(tiny_model(family), cond_dim=16))
        if checkpointed:
            enable_gradient_checkpointing(model.backbone)
        model(_ids(), sigma=torch.tensor([0.5, 1.5])).logsumexp(-1).mean().backward()
        params = [*model.named_parameters(), *model.backbone.named_parameters()]
        return {n: p.grad.clone() for n, p in params if p.grad is not None}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_timestep_frequencies() -> None:
    f = timestep_frequencies(torch.tensor([0.0, 1.0]), 6)
    assert f.shape == (2, 6)
    torch.testing.assert_close(f[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))
    assert timestep_frequencies(torch.tensor([0.0]), 5).shape == (1, 5)


def test_refuses_a_model_without_layers() -> None:
    with pytest.raises(ConfigError, match="adaLN-zero cannot condition"):
        AdaLNZero(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
