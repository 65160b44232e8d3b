"""Decode-time weight layouts: fused copies of linear weights, laid out for the fastest kernel.

Generating a token is a chain of matrix-vector products, bound by how fast the weights stream
from memory. On the 2-core benchmark machine (``benchmarks/generate.py``), fp32 ``F.linear``
over Hugging Face ``[out, in]`` weights reads them at ~16 GB/s for one row (~10 ms for the
58M-parameter model's products), while oneDNN over weights reordered once into its blocked
layout reads at ~35 GB/s (~4.8 ms), at 1 and at 8 rows alike. So inside
``with decode_weights(model):`` the modules that support it (:class:`~lmhub.nn.attention.Attention`,
:class:`~lmhub.nn.ffn.GLUFeedForward`, a model's output projection) run on such copies, with
q/k/v and gate/up fused into one product each. Off the CPU the copies keep the ``[out, in]``
layout and run with ``F.linear`` (the fusion still saves kernel launches).

The copies are built when a :class:`decode_weights` is made, cached per module (weakly, so they
go with the model), rebuilt when a source weight changed (new storage, dtype, device, or an
in-place write that bumped its version counter, as optimizer steps and ``load_state_dict`` do;
writes through ``param.data`` do not, so call :func:`clear_decode_weights` after those), and
never enter the state dict or autograd. They cost one extra copy of the weights they cover.

A module opts in with a ``build_decode_weights()`` method returning its copies; inside the
block its ``_decode_weights`` attribute holds them (``None`` outside), and its forward uses them.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_cache: weakref.WeakKeyDictionary[nn.Module, Any] = weakref.WeakKeyDictionary()


def _stamp(linear: nn.Linear) -> tuple[Any, ...]:
    parts: list[Any] = []
    for t in (linear.weight, linear.bias):
        if t is None:
            parts.append(None)
        else:
            parts += [t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape)]
    return tuple(parts)


def onednn_usable(weight: torch.Tensor) -> bool:
    """Whether oneDNN's prepacked linear kernel can serve ``weight`` (CPU, fp32/bf16)."""
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _pack_for_onednn(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """Reorder ``weight`` into oneDNN's blocked layout, or return ``None`` if that fails."""
    # These are the private ops Inductor's CPU weight prepacking uses; check them on one row,
    # so that a PyTorch build where they differ falls back to F.linear instead of failing.
    try:
        # No batch-size hint: measured, the default layout is as fast as any hint for 1, 8 and
        # 256 rows (and a hint of 1 is ~30% slower at 8 rows).
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous())
        probe = torch.linspace(-1, 1, weight.shape[1], dtype=weight.dtype)[None]
        got = torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
    except (RuntimeError, TypeError, AttributeError):
        return None
    if got.shape != (1, weight.shape[0]):
        return None
    # Check values, not just the shape: a layout mix-up would otherwise pass silently.
    want = F.linear(probe, weight, bias)
    tol = 1e-4 if weight.dtype == torch.float32 else 2e-2
    return packed if torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max()) else None


class FusedLinear:
    """One or more ``nn.Linear`` layers with the same input, fused along the output dimension.

    On CPU (fp32/bf16) the fused weight is reordered once for oneDNN's kernel; elsewhere it is
    kept in the ``[out, in]`` layout and run with ``F.linear``.

    Example:
        >>> qkv = FusedLinear(attn.q_proj, attn.k_proj, attn.v_proj)
        >>> q, k, v = qkv(x).split(qkv.out_features, dim=-1)
    """

    def __init__(self, *linears: nn.Linear) -> None:
        if not linears:
            raise ValueError("FusedLinear needs at least one linear layer.")
        self.out_features = [lin.out_features for lin in linears]
        """The output width of each fused layer, in order (split the output with it)."""
        self._sources = [weakref.ref(lin) for lin in linears]
        self._stamps = [_stamp(lin) for lin in linears]
        with torch.no_grad():
            weights = [lin.weight.detach() for lin in linears]
            weight = weights[0] if len(weights) == 1 else torch.cat(weights)
            biases = [lin.bias for lin in linears]
            self.bias: torch.Tensor | None = None
            if any(b is not None for b in biases):
                self.bias = torch.cat(
                    [
                        b.detach() if b is not None else weight.new_zeros(n)
                        for b, n in zip(biases, self.out_features, strict=True)
                    ]
                )
            packed = _pack_for_onednn(weight, self.bias) if onednn_usable(weight) else None
            self.onednn = packed is not None
            """Whether the weight is packed for oneDNN (else it is run with ``F.linear``)."""
            self.weight = packed if packed is not None else weight.contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def is_fresh(self) -> bool:
        """Whether every source layer still holds the weights this copy was made from."""
        for ref, stamp in zip(self._sources, self._stamps, strict=True):
            lin = ref()
            if lin is None or _stamp(lin) != stamp:
                return False
        return True


def _fresh(weights: Any) -> bool:
    if isinstance(weights, FusedLinear):
        return weights.is_fresh()
    if isinstance(weights, tuple | list):
        return all(_fresh(w) for w in weights)
    return True


def _weights_for(module: nn.Module) -> Any:
    weights = _cache.get(module)
    if weights is None or not _fresh(weights):
        weights = module.build_decode_weights()  # type: ignore[operator]
        _cache[module] = weights
    return weights


class decode_weights:  # lower case: used like a function, `with decode_weights(model):`
    """Within the block, modules of ``model`` that support it run on fused decode-time weights.

    The copies are built (or refreshed) when this object is made; entering and leaving only
    switches the modules over, so one object can be entered once per decode step cheaply. With
    ``enabled=False`` it does nothing. Gradients do not flow through the copies: use it under
    ``torch.no_grad()`` or ``torch.inference_mode()``.

    Example:
        >>> with torch.inference_mode(), decode_weights(model):
        ...     logits = model(next_ids, cache=cache)
    """

    def __init__(self, model: nn.Module, *, enabled: bool = True) -> None:
        self.modules: list[tuple[nn.Module, Any]] = []
        """The modules switched over, each with its copies."""
        if enabled:
            for module in model.modules():
                if callable(getattr(module, "build_decode_weights", None)):
                    self.modules.append((module, _weights_for(module)))

    def __enter__(self) -> decode_weights:
        for module, weights in self.modules:
            module._decode_weights = weights
        return self

    def __exit__(self, *exc: object) -> None:
        for module, _ in self.modules:
            module._decode_weights = None


def clear_decode_weights(model: nn.Module) -> None:
    """Drop the cached decode-time copies of ``model``'s weights (frees their memory)."""
    for module in model.modules():
        _cache.pop(module, None)
