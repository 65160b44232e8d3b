"""Building models without wasted memory, and streaming checkpoint tensors into them.

A model is built on the ``meta`` device (no memory, no init), then either materialised and
initialised on the target device, or filled tensor by tensor from a checkpoint with
``assign``-style parameter swaps, so that memory-mapped tensors stay memory-mapped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from lmhub.errors import StateDictMismatchError
from lmhub.utils import default_dtype, no_init_weights

ModelT = TypeVar("ModelT", bound=nn.Module)


def build_on_meta(builder: Callable[[Any], ModelT], config: Any, dtype: torch.dtype) -> ModelT:
    """Build ``builder(config)`` on the meta device with ``dtype`` as the default dtype.

    Init is skipped: it does nothing useful on meta tensors, yet torch routes it through its
    reference decompositions, whose first use imports torch._dynamo (~1.7 s).
    """
    with torch.device("meta"), default_dtype(dtype), no_init_weights():
        return builder(config)


def finish_model(model: nn.Module, device: torch.device) -> None:
    """Re-tie shared weights and recompute non-persistent buffers (RoPE tables) on ``device``."""
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    for module in model.modules():
        reset = getattr(module, "reset_non_persistent_buffers", None)
        if callable(reset):
            reset(device)


def materialize(model: nn.Module, device: torch.device) -> None:
    """Allocate a meta-built model on ``device`` and initialise its parameters once."""
    model.to_empty(device=device)
    finish_model(model, device)
    with torch.no_grad():
        reset = getattr(model, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for module in model.modules():
                if module is not model and callable(getattr(module, "reset_parameters", None)):
                    module.reset_parameters()


def _slots(model: nn.Module) -> dict[str, tuple[nn.Module, str, torch.Tensor, bool]]:
    """Return name -> (owning module, attribute, current tensor, is_parameter) for every
    parameter and persistent buffer, counting each shared tensor under its first name only."""
    slots: dict[str, tuple[nn.Module, str, torch.Tensor, bool]] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for name, param in module._parameters.items():
            if param is None or id(param) in seen:
                continue
            seen.add(id(param))
            slots[prefix + name] = (module, name, param, True)
        for name, buf in module._buffers.items():
            if buf is None or name in module._non_persistent_buffers_set:
                continue
            slots[prefix + name] = (module, name, buf, False)
    return slots


def tied_aliases(model: nn.Module) -> set[str]:
    """Return the names under which an already-counted parameter appears again (tied weights)."""
    all_names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    return all_names - {n for n, _ in model.named_parameters()}


def assign_tensors(
    model: nn.Module,
    items: Iterable[tuple[str | None, torch.Tensor, str]],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    path: Path | str | None = None,
    total: int | None = None,
    progress: bool = False,
    tied: dict[str, str] | None = None,
) -> None:
    """Put checkpoint tensors into ``model``; raise on any missing, unexpected or mis-shaped key.

    ``items`` yields ``(native_key or None, tensor, key_in_file)``. A meta tensor of the model is
    replaced by the checkpoint tensor, cast to ``dtype`` (``None`` keeps the stored dtype) and
    moved to ``device`` only where needed, so memory-mapped tensors stay memory-mapped. A
    materialised tensor is overwritten in place (``copy_``), keeping the model's dtype and the
    Parameter objects (optimizers holding them stay valid). Every problem is collected and all
    are raised together as one :class:`StateDictMismatchError`. Afterwards tied weights are tied
    again (``model.tie_weights()`` and the recorded ``tied`` aliases) and non-persistent buffers
    recomputed.
    """
    slots = _slots(model)
    aliases = tied_aliases(model) | set(tied or {})
    loaded: set[str] = set()
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    bar = _progress_bar(total, progress)
    try:
        for key, tensor, file_key in items:
            if bar is not None:
                bar.advance()
            if key is not None and key in aliases:
                continue  # a tied copy (e.g. lm_head) some exporters write out anyway
            slot = slots.get(key) if key is not None else None
            if slot is None:
                unexpected.append(file_key)
                continue
            module, attr, current, is_param = slot
            if tuple(tensor.shape) != tuple(current.shape):
                mismatched.append((file_key, tuple(current.shape), tuple(tensor.shape)))
                continue
            loaded.add(key)  # type: ignore[arg-type]
            if not current.is_meta:
                with torch.no_grad():
                    current.copy_(tensor)
                continue
            target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
            if tensor.dtype != target or tensor.device != device:
                tensor = tensor.to(device=device, dtype=target)
            if is_param:
                module._parameters[attr] = nn.Parameter(tensor, requires_grad=current.requires_grad)
            else:
                module._buffers[attr] = tensor
    finally:
        if bar is not None:
            bar.stop()
    missing = [k for k in slots if k not in loaded and k not in aliases]
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(
            missing=missing, unexpected=unexpected, shape_mismatches=mismatched, path=path
        )
    if any(slot[2].is_meta for slot in slots.values()):
        finish_model(model, device)  # recompute RoPE tables etc. where the weights now live
    elif callable(getattr(model, "tie_weights", None)):
        model.tie_weights()
    for alias, source in (tied or {}).items():
        _retie(model, alias, source)


def _module_and_attr(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def _retie(model: nn.Module, alias: str, source: str) -> None:
    """Make ``alias`` the very same parameter (or buffer) as ``source`` again."""
    module, attr = _module_and_attr(model, alias)
    source_module, source_attr = _module_and_attr(model, source)
    if source_attr in source_module._parameters:
        module._parameters[attr] = source_module._parameters[source_attr]
    else:
        module._buffers[attr] = source_module._buffers[source_attr]


class _Bar:
    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self._task = self._progress.add_task("Loading tensors", total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def stop(self) -> None:
        self._progress.stop()


def _progress_bar(total: int | None, progress: bool) -> _Bar | None:
    # Only on a terminal and only for checkpoints big enough for a bar to be worth its cost.
    if not progress or not total or total < 64 or not sys.stderr.isatty():
        return None
    return _Bar(total)
