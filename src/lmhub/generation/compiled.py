"""Decode steps captured by ``torch.compile`` (opt-in: ``generate(..., compile_decode=True)``).

A decode step runs the model on one new token per row; most of it is a chain of small ops, each
with its fixed cost (Python, dispatch, thread synchronisation). ``torch.compile`` (the inductor
backend; on the CPU it builds C++) traces the step once and fuses the elementwise work (norms,
RoPE, the gated activation, residual adds) around the matrix products.

The step is :func:`last_logits`, the same function the eager path runs. It is compiled with
``dynamic=True``, so one graph serves every cache length and batch size (compiling takes tens of
seconds on a CPU, once per process and model, and once more for batches above 1, as dynamic
shapes specialise a size of 1: the first call pays for it; inductor's on-disk cache shortens it in
later processes). Only decode steps over a :class:`~lmhub.nn.kv_cache.StaticKVCache` are
compiled; the prefill stays eager. A decode-time model (:mod:`lmhub.nn.decode_weights`) keeps its
measured kernels: each of its products is one opaque op in the graph. Past ``torch._dynamo``'s
recompile limit (many models in one process) dynamo itself runs the step eagerly.

Compilation is never an error for the user: where ``torch.compile`` is missing, cannot run on
this Python, or fails to trace or build the step (no C++ compiler, an op inductor cannot lower),
a :class:`CompileFallbackWarning` says so once per model and generation continues eagerly, with
the cache rolled back to where the failed step found it.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch
from torch import nn

from lmhub.errors import first_line
from lmhub.nn.decode_weights import register_compile_op
from lmhub.nn.kv_cache import KVCache, StaticKVCache

LastLogits = Callable[..., torch.Tensor]


class CompileFallbackWarning(RuntimeWarning):
    """``compile_decode=True`` could not compile the decode step; it ran eagerly instead."""


def last_logits(
    model: nn.Module,
    logits_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor,
    cache: KVCache | None,
) -> torch.Tensor:
    """Run ``model`` on ``ids`` at ``positions``; return the logits of the last position.

    ``logits_fn`` is the model's optional ``logits(hidden)``: with it only the last position is
    projected to the vocabulary.
    """
    if logits_fn is not None:
        hidden = model(
            ids, attention_mask=mask, position_ids=positions, cache=cache, return_hidden=True
        )
        return logits_fn(hidden[:, -1])
    logits = model(ids, attention_mask=mask, position_ids=positions, cache=cache)
    return logits[:, -1]


_compiled: LastLogits | None = None
_failed: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def _compiled_last_logits() -> LastLogits:
    global _compiled
    if _compiled is None:
        register_compile_op()
        _compiled = torch.compile(last_logits, dynamic=True)
    return _compiled


def compile_failed(model: nn.Module) -> bool:
    """Whether compiling ``model``'s decode step failed in this process (it then runs eagerly)."""
    return model in _failed


def compiled_last_logits(
    model: nn.Module,
    logits_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    positions: torch.Tensor,
    cache: KVCache | None,
) -> torch.Tensor:
    """:func:`last_logits` through ``torch.compile`` where it can run; eagerly otherwise.

    Falls back (warning once per model) when the step is not a decode step over a static cache
    or compiling it fails; a failed step leaves ``cache`` as it found it and reruns eagerly.
    """
    if not isinstance(cache, StaticKVCache) or model in _failed:
        return last_logits(model, logits_fn, ids, mask, positions, cache)
    seq_len = cache.seq_len
    states = {i: dict(state) for i, state in cache.layer_states.items()}
    try:
        return _compiled_last_logits()(model, logits_fn, ids, mask, positions, cache)
    except Exception as error:  # any failure to compile means: run eagerly
        _failed.add(model)
        # Keys and values the failed step wrote sit past seq_len: the eager step overwrites them.
        cache.seq_len = seq_len
        cache.layer_states.clear()
        cache.layer_states.update(states)
        warnings.warn(
            f"compile_decode=True, but torch.compile could not compile the decode step of "
            f"{type(model).__name__} ({type(error).__name__}: {first_line(error)}); it runs "
            "eagerly instead.",
            CompileFallbackWarning,
            stacklevel=3,
        )
        return last_logits(model, logits_fn, ids, mask, positions, cache)


def reset_compiled() -> None:
    """Forget the compiled step and the models that failed to compile (for tests)."""
    global _compiled
    _compiled = None
    _failed.clear()
