"""Decode-time weights, applied as a module swap from outside the blocks.

Generating a token is a chain of matrix products over a few rows, bound by how fast the weights
stream from memory, plus the fixed cost of every op. :func:`decode_model` returns a copy of a
model's module tree that shares its parameters, in which

* an :class:`~lmhub.nn.attention.Attention` becomes a :class:`FusedQKVAttention` (q/k/v in one
  product), a :class:`~lmhub.nn.ffn.GLUFeedForward` a :class:`FusedGLUFeedForward` (gate/up in
  one product), an :class:`~lmhub.nn.norm.RMSNorm` a :class:`FastRMSNorm` (one kernel), and
* every other ``nn.Linear`` a :class:`DecodeLinear`,

so each block class keeps one forward and the model's own modules are never touched.

Which kernel runs a :class:`DecodeLinear` depends on the CPU, the weight's shape and the number
of rows, so it is measured, not assumed: at a layer's first call with a given row count, the
candidates (``F.linear`` over the ``[out, in]`` weight, a matmul over an ``[in, out]`` copy,
oneDNN's prepacked linear) are timed on the model's weights of that shape, and the fastest is kept
for the process (:func:`kernel_choices`); off the CPU, ``F.linear`` (the vendor GEMM) is used.
Only the layouts some row count chose are kept, so a model whose plain ``F.linear`` wins costs no
extra memory beyond the fused q/k/v and gate/up.

The copy is cached per model (weakly) and rebuilt when a parameter changed (new storage, dtype,
device, or an in-place write that bumped its version counter, as optimizer steps and
``load_state_dict`` do; writes through ``param.data`` do not, so call
:func:`clear_decode_model` after those). Its extra tensors are plain attributes: they never enter
a state dict or autograd.

Example:
    >>> fast = decode_model(model)
    >>> with torch.inference_mode():
    ...     logits = fast(ids, cache=cache)
"""

from __future__ import annotations

import copy
import functools
import itertools
import platform
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.nn.attention import Attention
from lmhub.nn.ffn import GLUFeedForward
from lmhub.nn.norm import RMSNorm
from lmhub.nn.rope import apply_rotary, rotate_half

Kernel = Callable[[torch.Tensor], torch.Tensor]

KERNELS: tuple[str, ...] = ("linear", "linear_t", "onednn", "mv")
"""The candidates: ``F.linear`` on ``[out, in]``, matmul on an ``[in, out]`` copy, oneDNN, and
for a single row the matrix-vector product on ``[out, in]`` (BLAS gemv, which splits the rows
over threads differently from a one-row GEMM)."""

_MEASURE_BYTES = 64 * 2**20
"""Weights measured together per candidate: more than a core's cache, so they stream as in use."""

_choices: dict[tuple[Any, ...], str] = {}

_handles: weakref.WeakValueDictionary[int, DecodeLinear] = weakref.WeakValueDictionary()
"""Every live :class:`DecodeLinear` by its handle: the compiled op's way back to its layer."""
_next_handle = itertools.count()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), to key and report choices by."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kernel_choices() -> dict[tuple[Any, ...], str]:
    """The kernels chosen so far in this process, keyed by
    ``(cpu, out_features, in_features, dtype, device, rows, threads)``."""
    return dict(_choices)


def _onednn_usable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def _rows_bucket(rows: int) -> int:
    # Decoding uses the batch size as is; prefill lengths share power-of-two buckets.
    return rows if rows <= 8 else min(1 << (rows - 1).bit_length(), 1024)


class DecodeLinear(nn.Module):
    """One or more ``nn.Linear`` with the same input as one product, by the fastest kernel.

    The output is the layers' outputs side by side (split it with :attr:`out_features`). The
    source layers are held as plain attributes, so this module has no parameters of its own.

    Example:
        >>> qkv = DecodeLinear([attn.q_proj, attn.k_proj, attn.v_proj])
        >>> q, k, v = qkv(x).split(qkv.out_features, dim=-1)
    """

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        if not linears:
            raise ValueError("DecodeLinear needs at least one linear layer.")
        self.sources = tuple(linears)
        self.out_features = [lin.out_features for lin in linears]
        """The output width of each source layer, in order."""
        self.in_features = linears[0].in_features
        self.group: list[DecodeLinear] = [self]
        """The layers of this shape in the model, measured together (set by the swap)."""
        self._layouts: dict[str, torch.Tensor] = {}
        self._bias: torch.Tensor | None = None
        self._runs: dict[tuple[int, int], Kernel] = {}
        self._handle = next(_next_handle)
        _handles[self._handle] = self

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            # Traced as one opaque op that runs this forward: the kernels stay measured and
            # their weight layouts (oneDNN's are opaque) out of the graph.
            return torch.ops.lmhub.decode_linear(x, self._handle, sum(self.out_features))
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.numel() // self.in_features, torch.get_num_threads())
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = self._kernel(self._choose(key[0]))
        return run(x)

    # Layouts and kernels.

    def _weight(self) -> torch.Tensor:
        """The ``[out, in]`` weight: the source's own when there is one source."""
        if len(self.sources) == 1:
            return self.sources[0].weight.detach()
        if "fused" not in self._layouts:
            self._layouts["fused"] = torch.cat([lin.weight.detach() for lin in self.sources])
        return self._layouts["fused"]

    @property
    def weight(self) -> torch.Tensor:
        """The ``[out, in]`` (fused) weight, named as ``nn.Linear`` names it."""
        return self._weight()

    @property
    def bias(self) -> torch.Tensor | None:
        """The (fused) bias, or ``None``, as ``nn.Linear`` names it."""
        biases = [lin.bias for lin in self.sources]
        if all(b is None for b in biases):
            return None
        if self._bias is None:
            w = self.sources[0].weight
            self._bias = torch.cat(
                [
                    b.detach() if b is not None else w.new_zeros(n)
                    for b, n in zip(biases, self.out_features, strict=True)
                ]
            )
        return self._bias

    def _layout(self, kernel: str) -> torch.Tensor | None:
        if kernel in ("linear", "mv"):
            return self._weight()
        if kernel not in self._layouts:
            weight = self._weight()
            if kernel == "linear_t":
                self._layouts[kernel] = weight.t().contiguous()
            elif kernel == "onednn" and _onednn_usable(weight):
                try:
                    self._layouts[kernel] = torch.ops.mkldnn._reorder_linear_weight(
                        weight.contiguous()
                    )
                except (RuntimeError, TypeError, AttributeError):
                    return None
            else:
                return None
        return self._layouts[kernel]

    def _kernel(self, kernel: str) -> Kernel:
        w, b = self._layout(kernel), self.bias
        assert w is not None
        if kernel == "linear":
            return lambda x: F.linear(x, w, b)
        if kernel == "linear_t":
            if b is None:
                return lambda x: torch.matmul(x, w)
            return lambda x: torch.matmul(x, w).add_(b)
        if kernel == "mv":  # one row only (chosen for rows == 1)
            if b is None:
                return lambda x: torch.mv(w, x.reshape(-1)).view(*x.shape[:-1], w.shape[0])
            return lambda x: torch.addmv(b, w, x.reshape(-1)).view(*x.shape[:-1], w.shape[0])
        return lambda x: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")

    def _choose(self, rows: int) -> str:
        w = self._weight()
        rows = _rows_bucket(rows)
        key = (cpu_model(), w.shape[0], w.shape[1], w.dtype, w.device.type, rows)
        key += (torch.get_num_threads(),)
        if key not in _choices:
            _choices[key] = _measure(self.group, rows)
        self._drop_unused()
        return _choices[key]

    def _drop_unused(self) -> None:
        """Free layouts no row count chose (measuring built them for every candidate)."""
        w = self._weight()
        shape = (w.shape[0], w.shape[1], w.dtype, w.device.type)
        chosen = {k for key, k in _choices.items() if key[1:5] == shape}
        if chosen & {"linear", "mv"}:
            chosen.add("fused")  # the fused copy is these kernels' layout
        for member in self.group:
            for layout in [k for k in member._layouts if k not in chosen]:
                del member._layouts[layout]


@functools.cache
def register_compile_op() -> None:
    """Define ``torch.ops.lmhub.decode_linear``, which ``torch.compile`` sees in place of a
    :class:`DecodeLinear` (call before compiling a decode-time model; defined once, on first
    use, so importing lmhub stays light)."""

    @torch.library.custom_op("lmhub::decode_linear", mutates_args=())
    def decode_linear(x: torch.Tensor, handle: int, out_features: int) -> torch.Tensor:
        return _handles[handle]._run(x)

    @decode_linear.register_fake
    def _(x: torch.Tensor, handle: int, out_features: int) -> torch.Tensor:
        return x.new_empty(*x.shape[:-1], out_features)


def _measure(group: Sequence[DecodeLinear], rows: int) -> str:
    """Time each candidate over the group's weights (best of 8 interleaved rounds, so a noisy
    neighbour slows every candidate alike); return the fastest."""
    weight = group[0]._weight()
    if weight.device.type != "cpu":
        return "linear"  # the vendor GEMM; timing an asynchronous device needs more care
    per_layer = weight.numel() * weight.element_size()
    members = list(group[: max(1, _MEASURE_BYTES // max(per_layer, 1))])
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(rows, weight.shape[1], generator=gen).to(weight.device, weight.dtype)
    runs: dict[str, list[Kernel]] = {}
    for kernel in KERNELS:
        if kernel == "mv" and rows != 1:
            continue
        if all(m._layout(kernel) is not None for m in members):
            fns = [m._kernel(kernel) for m in members]
            if _agrees(fns[0](x), members[0]._kernel("linear")(x)):
                runs[kernel] = fns
    if len(runs) == 1:
        return next(iter(runs))
    best = {kernel: float("inf") for kernel in runs}
    with torch.inference_mode():
        for _ in range(8):
            for kernel, fns in runs.items():
                start = time.perf_counter()
                for fn in fns:
                    fn(x)
                best[kernel] = min(best[kernel], time.perf_counter() - start)
    return min(best, key=best.__getitem__)


def _agrees(got: torch.Tensor, want: torch.Tensor) -> bool:
    # A layout mix-up in a private kernel must not pass silently: check values, not shapes.
    tol = 1e-4 if want.dtype in (torch.float32, torch.float64) else 2e-2
    return got.shape == want.shape and torch.allclose(
        got.float(), want.float(), rtol=tol, atol=tol * float(want.abs().max())
    )


class FusedQKVAttention(Attention):
    """:class:`~lmhub.nn.attention.Attention` with q/k/v projected by one :class:`DecodeLinear`.

    Made by :func:`decode_model` from an ``Attention``, sharing its parameters.
    """

    qkv: DecodeLinear

    def project_qkv(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        h, kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        qkv = self.qkv(x).view(b, s, h + 2 * kv, d).transpose(1, 2)
        partial = rope is not None and rope[0].shape[-1] != d  # RoPE on part of each head
        if rope is None or partial or self.q_norm is not None or self.k_norm is not None:
            q, k, v = qkv.split([h, kv, kv], dim=1)
            q, k = self.norm_qk(q, k)
            if rope is not None:
                q, k = apply_rotary(q, k, *rope)
            return q, k, v
        # Queries and keys sit side by side: rotate them in one go (the same arithmetic per
        # element as apply_rotary, so the same bits, in half the ops).
        cos, sin = rope[0].unsqueeze(1), rope[1].unsqueeze(1)
        qk = qkv[:, : h + kv]
        q, k = (qk * cos + rotate_half(qk) * sin).split([h, kv], dim=1)
        return q, k, qkv[:, h + kv :]


class FastRMSNorm(RMSNorm):
    """:class:`~lmhub.nn.norm.RMSNorm` as PyTorch's one-kernel ``F.rms_norm`` (the same bits;
    one op instead of eight). Made by :func:`decode_model` for float32 models only: in bfloat16
    the kernel rounds once where ``RMSNorm`` rounds twice."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class FusedGLUFeedForward(GLUFeedForward):
    """:class:`~lmhub.nn.ffn.GLUFeedForward` with gate and up as one :class:`DecodeLinear`.

    Made by :func:`decode_model` from a ``GLUFeedForward``, sharing its parameters.
    """

    gate_up: DecodeLinear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down_proj(self._act(gate) * up)


def _clone_as(module: nn.Module, cls: type[nn.Module], children: dict[str, nn.Module]) -> Any:
    """A shallow copy of ``module`` of class ``cls`` whose children are replaced or added."""
    clone = copy.copy(module)
    clone.__class__ = cls
    clone._modules = {**module._modules, **children}
    return clone


def _swap(module: nn.Module, linears: list[DecodeLinear], dtype: torch.dtype) -> nn.Module:
    def fused(*layers: nn.Linear) -> DecodeLinear:
        linears.append(DecodeLinear(layers))
        return linears[-1]

    if type(module) is nn.Linear:
        return fused(module)
    if type(module) is RMSNorm:
        # Float32 only: in bfloat16 the one kernel rounds once where RMSNorm rounds twice.
        # Gemma's (1 + w) scale is not F.rms_norm's: such norms keep their own forward.
        weight = module.weight
        plain = not module.unit_offset and (weight is None or weight.dtype == dtype)
        if dtype == torch.float32 and plain:
            return _clone_as(module, FastRMSNorm, {})
        return module
    # Fused projections replace their source layers, which stay (unused) as the parameters' home.
    kept: tuple[str, ...] = ()
    cls: type[nn.Module] = type(module)
    new: dict[str, nn.Module] = {}
    if type(module) is Attention and module.v_proj is not None and module.v_norm is None:
        # (Layers without their own value projection, or with value norms, keep their forward.)
        kept, cls = ("q_proj", "k_proj", "v_proj"), FusedQKVAttention
        new["qkv"] = fused(*(getattr(module, name) for name in kept))
    elif type(module) is GLUFeedForward:
        kept, cls = ("gate_proj", "up_proj"), FusedGLUFeedForward
        new["gate_up"] = fused(*(getattr(module, name) for name in kept))
    for name, child in module._modules.items():
        if child is not None and name not in kept:
            swapped = _swap(child, linears, dtype)
            if swapped is not child:
                new[name] = swapped
    return _clone_as(module, cls, new) if new else module


def build_decode_model(model: nn.Module) -> nn.Module:
    """Return a decode-time copy of ``model`` (uncached; see :func:`decode_model`)."""
    linears: list[DecodeLinear] = []
    dtypes = [m.weight.dtype for m in model.modules() if type(m) is nn.Linear]
    fast = _swap(model, linears, dtypes[0] if dtypes else torch.get_default_dtype())
    groups: dict[tuple[Any, ...], list[DecodeLinear]] = {}
    for lin in linears:
        w = lin.sources[0].weight
        key = (sum(lin.out_features), lin.in_features, w.dtype, w.device, len(lin.sources))
        groups.setdefault(key, []).append(lin)
    for group in groups.values():
        for lin in group:
            lin.group = group
    return fast


def _stamp(model: nn.Module) -> tuple[Any, ...]:
    parts: list[Any] = []
    for module in model.modules():
        parts += [id(module), module.training]
        for p in module._parameters.values():
            if p is not None:
                parts += [p.data_ptr(), p._version, p.dtype, p.device, p.shape]
    return tuple(parts)


_cache: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module]] = (
    weakref.WeakKeyDictionary()
)


def decode_model(model: nn.Module) -> nn.Module:
    """Return ``model``'s decode-time copy, reusing the last one while its weights are unchanged.

    Gradients do not flow through the fused copies: run it under ``torch.inference_mode()``.
    """
    stamp = _stamp(model)
    cached = _cache.get(model)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with torch.no_grad():
        fast = build_decode_model(model)
    _cache[model] = (stamp, fast)
    return fast


def clear_decode_model(model: nn.Module) -> None:
    """Drop the cached decode-time copy of ``model`` (frees its fused weights)."""
    _cache.pop(model, None)
