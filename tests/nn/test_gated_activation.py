"""`lmhub.nn.ffn.gated_activation`: the same values and gradients as autograd, less saved."""

from __future__ import annotations

import pytest
import torch

from lmhub.nn.ffn import ACTIVATIONS, GLUFeedForward, gated_activation


def _saved_bytes(fn) -> int:  # type: ignore[no-untyped-def]
    """Bytes of distinct tensors autograd keeps for the backward while ``fn`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_values_and_gradients_equal_autograd_bit_for_bit(name: str) -> None:
    torch.manual_seed(0)
    act = ACTIVATIONS[name]
    gate = torch.randn(3, 5, 16, requires_grad=True)
    up = torch.randn(3, 5, 16, requires_grad=True)
    grad = torch.randn(3, 5, 16)
    ours = gated_activation(gate, up, act)
    ours_grads = torch.autograd.grad(ours, (gate, up), grad)
    plain = act(gate) * up
    plain_grads = torch.autograd.grad(plain, (gate, up), grad)
    assert torch.equal(ours, plain)
    for a, b in zip(ours_grads, plain_grads, strict=True):
        assert torch.equal(a, b)


def test_only_the_needed_gradient_is_computed() -> None:
    gate = torch.randn(4, 8, requires_grad=True)
    up = torch.randn(4, 8)
    out = gated_activation(gate, up, ACTIVATIONS["silu"])
    out.sum().backward()
    assert gate.grad is not None and up.grad is None


def test_a_feed_forward_saves_one_activation_less() -> None:
    torch.manual_seed(0)
    ffn = GLUFeedForward(32, 64)
    x = torch.randn(2, 16, 32, requires_grad=True)
    ours = _saved_bytes(lambda: ffn(x))
    plain = _saved_bytes(
        lambda: ffn.down_proj(torch.nn.functional.silu(ffn.gate_proj(x)) * ffn.up_proj(x))
    )
    assert plain - ours == 2 * 16 * 64 * 4  # one [2, 16, 64] fp32 tensor


def test_without_gradients_it_is_the_plain_expression() -> None:
    gate, up = torch.randn(4, 8), torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(
            gated_activation(gate, up, torch.nn.functional.gelu),
            torch.nn.functional.gelu(gate) * up,
        )
