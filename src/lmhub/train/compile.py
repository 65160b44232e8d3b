"""Per-layer ``torch.compile`` for training (``TrainConfig.compile``).

Each repeated block (:func:`~lmhub.train.checkpointing.find_layers`) gets its forward compiled
by inductor, the way torchtitan compiles per block: the blocks share their code, so one graph
serves them all, and the compile cost is paid once per process (tens of seconds on a CPU, in the
first step). Inductor fuses the elementwise work around the matrix products (norms, RoPE, the
gated activation, residual adds) in the forward and the backward, and its partitioner saves
fewer activations for the backward pass, recomputing cheap ones instead. On the 58M benchmark
model (``benchmarks/train.py``, fp32, 2 threads) it trained at 1.28x transformers' speed with
0.59x its peak RSS, where lmhub's eager step holds 0.72x.

Only training forwards go through the compiled code: a call without gradients (evaluation) or
with a KV cache (prediction) runs the layer's eager forward, so decoding never recompiles per
cache length. Compiling after :func:`~lmhub.train.checkpointing.enable_gradient_checkpointing`
compiles the checkpointed forward. State-dict keys do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from lmhub.errors import CompileError, first_line
from lmhub.train.checkpointing import find_layers, wrap_layer_forwards

__all__ = ["compile_layers", "is_compiled"]

_FLAG = "_lmhub_compiled"


def _compiled(forward: Callable[..., Any], name: str) -> Callable[..., Any]:
    compiled = torch.compile(forward)
    # Imported here, when compiling is asked for: torch._dynamo adds 0.4 s to an import.
    from torch._dynamo.exc import TorchDynamoException

    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled() or kwargs.get("cache") is not None:
            return forward(*args, **kwargs)
        try:
            return compiled(*args, **kwargs)
        except TorchDynamoException as error:  # inductor's errors derive from it too
            raise CompileError(name, f"{type(error).__name__}: {first_line(error)}.") from error

    return run


def compile_layers(model: nn.Module, *, layers: Iterable[nn.Module] | None = None) -> int:
    """Compile the training forward of each of ``model``'s layers; return how many.

    ``layers`` defaults to :func:`~lmhub.train.checkpointing.find_layers`. Calling this twice is
    harmless. A failure to compile surfaces at the first training forward as a
    :class:`~lmhub.errors.CompileError`.

    Example:
        >>> compile_layers(model)
        8
        >>> model(ids).sum().backward()  # the first call compiles (once for all 8 layers)
    """
    blocks = list(layers) if layers is not None else find_layers(model)
    wrap_layer_forwards(
        blocks,
        _FLAG,
        lambda forward, index, block: _compiled(forward, f"layer {index} ({type(block).__name__})"),
    )
    return len(blocks)


def is_compiled(module: nn.Module) -> bool:
    """Whether :func:`compile_layers` compiled ``module``."""
    return bool(getattr(module, _FLAG, False))
