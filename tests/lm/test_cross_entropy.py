"""`linear_cross_entropy`: equal to the plain loss and gradients, one chunk of logits at a time."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lmhub.lm.cross_entropy as ce
from lmhub.lm.cross_entropy import chunked_cross_entropy, linear_cross_entropy


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_equals_the_plain_loss_and_gradients(with_bias: bool, chunk_size: int) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(50, 16, requires_grad=True)
    weight = torch.randn(40, 16, requires_grad=True)
    bias = torch.randn(40, requires_grad=True) if with_bias else None
    targets = torch.randint(0, 40, (50,))
    got = linear_cross_entropy(hidden, weight, targets, bias=bias, chunk_size=chunk_size)
    logits = hidden @ weight.T + (bias if bias is not None else 0)
    want = F.cross_entropy(logits, targets, reduction="sum")
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    inputs = [t for t in (hidden, weight, bias) if t is not None]
    # A non-unit upstream gradient checks that backward scales the stored gradients.
    got_grads = torch.autograd.grad(got * 0.37, inputs)
    want_grads = torch.autograd.grad(want * 0.37, inputs)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_only_one_chunk_of_logits_exists_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[int] = []
    real_linear = F.linear

    def recording_linear(*args: torch.Tensor) -> torch.Tensor:
        out = real_linear(*args)
        rows.append(out.shape[0])
        return out

    monkeypatch.setattr(ce.F, "linear", recording_linear)
    hidden = torch.randn(200, 8, requires_grad=True)
    weight = torch.randn(500, 8, requires_grad=True)
    targets = torch.randint(0, 500, (200,))
    saved: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    ):
        loss = linear_cross_entropy(hidden, weight, targets, chunk_size=16)
    loss.backward()
    assert rows and max(rows) <= 16 and sum(rows) == 200  # forward: one projection per chunk
    # What backward keeps is the gradients of hidden and weight, never [200, 500] logits.
    assert saved and max(saved) <= 500 * 8


def test_no_gradient_work_without_grad() -> None:
    hidden, weight = torch.randn(10, 4, requires_grad=True), torch.randn(6, 4)
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, torch.zeros(10, dtype=torch.long))
    assert not loss.requires_grad
    torch.testing.assert_close(
        loss, F.cross_entropy(hidden @ weight.T, torch.zeros(10, dtype=torch.long), reduction="sum")
    )


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hidden \[n, dim\]"):
        linear_cross_entropy(torch.randn(2, 3, 4), torch.randn(5, 4), torch.zeros(6).long())


def test_bf16_inputs_give_bf16_gradients_close_to_float32() -> None:
    torch.manual_seed(0)
    hidden, weight = torch.randn(30, 16), torch.randn(20, 16) * 0.3
    targets = torch.randint(0, 20, (30,))
    h16 = hidden.bfloat16().requires_grad_()
    w16 = weight.bfloat16().requires_grad_()
    loss = linear_cross_entropy(h16, w16, targets, chunk_size=8)
    assert loss.dtype == torch.float32  # the sum is kept in float32
    loss.backward()
    assert h16.grad is not None and h16.grad.dtype == torch.bfloat16
    assert w16.grad is not None and w16.grad.dtype == torch.bfloat16
    h32, w32 = hidden.requires_grad_(), weight.requires_grad_()
    want = F.cross_entropy(h32 @ w32.T, targets, reduction="sum")
    want.backward()
    torch.testing.assert_close(loss, want, rtol=2e-2, atol=0.0)
    torch.testing.assert_close(w16.grad.float(), w32.grad, rtol=5e-2, atol=5e-2)


def test_chunked_cross_entropy_through_any_head_equals_the_plain_loss() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(23, 8, requires_grad=True)
    weight = torch.randn(17, 8, requires_grad=True)
    targets = torch.randint(0, 17, (23,))

    def capped(h: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.tanh(h @ weight.T / 2.0)  # a logit soft-cap, as Gemma 2 has

    got = chunked_cross_entropy(hidden, targets, capped, chunk_size=5)
    want = F.cross_entropy(capped(hidden), targets, reduction="sum")
    torch.testing.assert_close(got, want)
    for g, w in zip(
        torch.autograd.grad(got, (hidden, weight)), torch.autograd.grad(want, (hidden, weight))
    ):
        torch.testing.assert_close(g, w)


def test_a_second_backward_through_the_same_graph_is_refused() -> None:
    # The backward scales the stored gradients in place (no second [vocab, dim] copy at the
    # peak), so it can run once; retain_graph=True must not silently double-scale them.
    hidden = torch.randn(6, 8, requires_grad=True)
    weight = torch.randn(11, 8, requires_grad=True)
    loss = linear_cross_entropy(hidden, weight, torch.arange(6), chunk_size=4) / 6
    loss.backward(retain_graph=True)
    expected = F.cross_entropy(hidden.detach() @ weight.detach().T, torch.arange(6))
    torch.testing.assert_close(loss.detach(), expected)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_under_bf16_autocast_the_products_are_bf16_like_f_linear() -> None:
    # bf16-mixed training: the reference is F.linear under autocast (bf16 products, whose
    # gradients autograd also takes in bf16) with a float32 cross-entropy.
    torch.manual_seed(0)
    hidden = torch.randn(40, 16, requires_grad=True)
    weight = (torch.randn(50, 16) * 0.3).requires_grad_()
    targets = torch.randint(0, 50, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")
    ref.backward()
    want = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy(hidden, weight, targets, chunk_size=16)
    got.backward()
    assert got.dtype == weight.grad.dtype == hidden.grad.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=0)
    torch.testing.assert_close(hidden.grad, want[0], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(weight.grad, want[1], rtol=2e-2, atol=2e-2)
    # ...and they really are bf16 products: a float32 computation differs by more.
    hidden.grad = weight.grad = None
    exact = linear_cross_entropy(hidden, weight, targets)
    assert (exact - got).abs() > 1e-4
