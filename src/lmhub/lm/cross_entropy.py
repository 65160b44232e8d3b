"""Cross-entropy through the output head, a chunk of positions at a time.

Projecting every position to the vocabulary at once costs ``tokens x vocab`` float32 numbers
for the logits and as many again for their gradient (8 x 2048 x 128k tokens: 8 GiB each).
:func:`linear_cross_entropy` instead walks over the positions in chunks: for each chunk it
projects with the output head, takes the cross-entropy, and computes that chunk's gradients
right away, so the float32 logits of one chunk only ever exist, in the forward pass and the
backward pass alike. The backward pass then only scales the stored gradients. The sum it returns
equals ``F.cross_entropy(hidden @ weight.T + bias, targets, reduction="sum")`` within float32
rounding, and so do the gradients.

Every LM type whose loss is a cross-entropy over some positions (autoregressive, masked,
diffusion) can use it: select the positions' hidden states, then call it. A head that is more
than one linear map (a logit soft-cap, a BERT-style transform) goes through
:func:`chunked_cross_entropy` instead, which recomputes each chunk's logits in the backward
pass (``torch.utils.checkpoint``) to keep the same one-chunk-at-a-time memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from lmhub.models.decoder import DecoderLM

__all__ = ["CHUNK_SIZE", "chunked_cross_entropy", "head_cross_entropy", "linear_cross_entropy"]

CHUNK_SIZE = 256
"""Positions projected to the vocabulary at a time. Measured on the 58M benchmark model
(2048 positions, 32000 tokens): 128 to 2048 all take the same time, and a smaller chunk keeps
less float32 logits alive at the peak (256 x 32000: 33 MB)."""


def head_cross_entropy(
    model: DecoderLM, hidden: torch.Tensor, targets: torch.Tensor, *, chunk_size: int = CHUNK_SIZE
) -> torch.Tensor:
    """Summed cross-entropy of ``model``'s output head over the selected final hidden states
    ``hidden`` ``[n, dim]`` against ``targets`` ``[n]``: :func:`linear_cross_entropy` where the
    head is ``lm_head`` alone, else :func:`chunked_cross_entropy` through ``model.logits`` (a
    family with a soft-cap or scaling, or a head split by vocabulary over tensor-parallel ranks,
    whose module gathers the logits)."""
    head = model.lm_head
    split_head = getattr(head.weight, "device_mesh", None) is not None  # a DTensor weight
    if type(model).logits is DecoderLM.logits and not split_head:
        return linear_cross_entropy(
            hidden, head.weight, targets, bias=head.bias, chunk_size=chunk_size
        )
    return chunked_cross_entropy(hidden, targets, model.logits, chunk_size=chunk_size)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> torch.Tensor:
    """Return the summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets``.

    Args:
        hidden: ``[n, dim]`` hidden states, one per scored position.
        weight: ``[vocab, dim]`` output head weight.
        targets: ``[n]`` target ids, all valid (select the scored positions beforehand).
        bias: ``[vocab]`` output head bias, if any.
        chunk_size: positions projected at a time; peak extra memory is about
            ``2 x chunk_size x vocab`` float32 numbers.

    Example:
        >>> h, w = torch.randn(5, 8), torch.randn(11, 8)
        >>> t = torch.tensor([1, 2, 3, 4, 5])
        >>> ref = F.cross_entropy(h @ w.T, t, reduction="sum")
        >>> torch.allclose(linear_cross_entropy(h, w, t, chunk_size=2), ref)
        True
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"linear_cross_entropy takes hidden [n, dim] and targets [n]; got hidden "
            f"{tuple(hidden.shape)} and targets {tuple(targets.shape)}."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}.")
    # Inside Function.forward grad mode is off, so decide here whether gradients are wanted.
    wants_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, weight, bias)
    )
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_size, wants_grad)


def chunked_cross_entropy(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    chunk_size: int = CHUNK_SIZE,
) -> torch.Tensor:
    """Return the summed cross-entropy of ``logits_fn(hidden)`` against ``targets``, a chunk of
    positions at a time; each chunk's logits are recomputed in the backward pass, not kept.

    Example:
        >>> h, w = torch.randn(5, 8), torch.randn(11, 8)
        >>> t = torch.tensor([1, 2, 3, 4, 5])
        >>> capped = lambda x: 30 * torch.tanh(x @ w.T / 30)
        >>> ref = F.cross_entropy(capped(h), t, reduction="sum")
        >>> torch.allclose(chunked_cross_entropy(h, t, capped, chunk_size=2), ref)
        True
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}.")

    def chunk_loss(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = logits_fn(h)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return F.cross_entropy(logits, t, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32))
    for start in range(0, hidden.shape[0], chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        total = total + checkpoint(chunk_loss, h, t, use_reentrant=False)
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk_size: int,
        wants_grad: bool,
    ) -> torch.Tensor:
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        need_h, need_w, need_b = need_h and wants_grad, need_w and wants_grad, need_b and wants_grad
        grad_hidden = torch.empty_like(hidden) if need_h else None
        # Logits, loss and gradient sums in at least float32 (float64 inputs stay float64):
        # many chunks add into the same weight gradient.
        acc_dtype = torch.promote_types(hidden.dtype, torch.float32)
        grad_weight = torch.zeros_like(weight, dtype=acc_dtype) if need_w else None
        grad_bias = torch.zeros_like(bias, dtype=acc_dtype) if need_b and bias is not None else None
        total = torch.zeros((), dtype=acc_dtype, device=hidden.device)
        # The products run in the autocast dtype when autocast is on (bf16-mixed training), the
        # way F.linear would; the operands are cast once here, not once per chunk and product.
        device = hidden.device.type
        autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
        mm_dtype = torch.get_autocast_dtype(device) if autocast else weight.dtype
        # Autocast off inside: every operand already has the dtype chosen above.
        off = torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext()
        with off:
            w = weight.to(mm_dtype)
            b = None if bias is None else bias.to(mm_dtype)
            hidden_mm = hidden.to(mm_dtype)
            # A low-precision weight-gradient product is summed in acc_dtype through two reused
            # buffers: adding a bf16 tensor into a float32 one directly takes over twice as long
            # as converting first, and fresh [vocab, dim] temporaries fault their pages in again
            # every chunk.
            buffers = None
            if grad_weight is not None and mm_dtype != acc_dtype:
                buffers = torch.empty_like(w), torch.empty_like(grad_weight)
            for start in range(0, hidden.shape[0], chunk_size):
                h = hidden_mm[start : start + chunk_size]
                t = targets[start : start + chunk_size]
                logits = F.linear(h, w, b).to(acc_dtype)
                picked = logits.gather(1, t[:, None])
                # The log-sum-exp by hand, in place over the logits (each pass over a
                # [chunk, vocab] tensor costs as much as a product here): they become
                # exp(logits - max), then the softmax, d(loss)/d(logits) + one_hot.
                top = logits.amax(dim=1, keepdim=True)
                exps = logits.sub_(top).exp_()
                sums = exps.sum(dim=1, keepdim=True)
                total += (top + sums.log() - picked).sum()
                if not (need_h or need_w or need_b):
                    continue
                grad = exps.div_(sums)
                grad[torch.arange(t.shape[0], device=t.device), t] -= 1.0
                if grad_bias is not None:
                    grad_bias += grad.sum(0)
                grad = grad.to(mm_dtype)
                if grad_hidden is not None:
                    grad_hidden[start : start + chunk_size] = grad @ w
                if grad_weight is None:
                    continue
                if buffers is None:
                    grad_weight.addmm_(grad.T, h)  # in place: no [vocab, dim] temporary per chunk
                else:
                    partial, partial_acc = buffers
                    torch.mm(grad.T, h, out=partial)
                    grad_weight += partial_acc.copy_(partial)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        ctx.used = False
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if ctx.used:
            raise RuntimeError(
                "linear_cross_entropy's backward ran twice (retain_graph=True): it scales its "
                "stored gradients in place, once. Call linear_cross_entropy again for a second "
                "backward pass."
            )
        ctx.used = True
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        weight_dtype, bias_dtype = ctx.dtypes
        # In place: a scaled copy of the [vocab, dim] gradient would be alive beside the stored
        # one at the start of the backward pass, when every activation is still held.
        scale = grad_output
        if grad_hidden is not None:
            grad_hidden = grad_hidden.mul_(scale)
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(scale).to(weight_dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.mul_(scale).to(bias_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None
