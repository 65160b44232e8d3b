"""Put checkpoint tensors into a model: shape- and dtype-checked, every problem reported at once.

A meta-built model gets each tensor swapped in (``assign``-style), so memory-mapped tensors stay
memory-mapped; a materialised model has its tensors overwritten in place. Afterwards tied
weights are tied again and non-persistent buffers (RoPE tables) are recomputed on the device the
weights now live on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from lmhub.checkpoint.state import tied_names
from lmhub.errors import ModelCheckpointError, StateDictMismatchError, TensorDtypeMismatchError

__all__ = ["assign_tensors", "check_ties", "finish_model", "retie"]


def finish_model(model: nn.Module, device: torch.device) -> None:
    """Re-tie shared weights and recompute non-persistent buffers (RoPE tables) on ``device``."""
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    for module in model.modules():
        reset = getattr(module, "reset_non_persistent_buffers", None)
        if callable(reset):
            reset(device)


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
            if buf is None or name in module._non_persistent_buffers_set or id(buf) in seen:
                continue
            seen.add(id(buf))
            slots[prefix + name] = (module, name, buf, False)
    return slots


def _is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def assign_tensors(
    model: nn.Module,
    items: Iterable[tuple[str | None, torch.Tensor, str]],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    path: Path | str | None = None,
    total: int | None = None,
    progress: bool = False,
    tied: Mapping[str, str] | None = None,
) -> None:
    """Put checkpoint tensors into ``model``; raise on any missing, unexpected or mis-shaped key.

    ``items`` yields ``(native_key or None, tensor, key_in_file)``. A meta tensor of the model is
    replaced by the checkpoint tensor, cast to ``dtype`` (``None`` keeps the stored dtype) and
    moved to ``device`` only where needed, so memory-mapped tensors stay memory-mapped. A
    materialised tensor is overwritten in place (``copy_``), keeping the model's dtype and the
    Parameter objects (optimizers holding them stay valid). A floating-point tensor of another
    float dtype is cast; an integer or bool tensor for a floating-point weight is refused. Every
    problem is collected and all are raised together as one :class:`StateDictMismatchError` (or
    :class:`TensorDtypeMismatchError`). Afterwards tied weights are tied again
    (``model.tie_weights()`` and the ``tied`` aliases, which the caller has checked) and
    non-persistent buffers recomputed.
    """
    slots = _slots(model)
    if tied:
        check_ties(model, tied, path=path)
    was_meta = any(slot[2].is_meta for slot in slots.values())
    aliases = set(tied_names(model)) | set(tied or {})
    loaded: set[str] = set()
    unexpected: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    wrong_dtype: list[tuple[str, torch.dtype, torch.dtype]] = []
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
            loaded.add(key)  # type: ignore[arg-type]  # present: mis-shaped is not also missing
            if tuple(tensor.shape) != tuple(current.shape):
                mismatched.append((file_key, tuple(current.shape), tuple(tensor.shape)))
                continue
            if _is_float(current.dtype) and not _is_float(tensor.dtype):
                wrong_dtype.append((file_key, current.dtype, tensor.dtype))
                continue
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
    if wrong_dtype:
        raise TensorDtypeMismatchError(wrong_dtype, path=path)
    if was_meta:
        finish_model(model, device)  # recompute RoPE tables etc. where the weights now live
    elif callable(getattr(model, "tie_weights", None)):
        model.tie_weights()
    for alias, source in (tied or {}).items():
        retie(model, alias, source)
    left = [name for name, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    if left:
        raise ModelCheckpointError(
            f"After loading the checkpoint{_at(path)}, {len(left)} tensors of the model are still "
            f"on the meta device (e.g. '{left[0]}'): neither the file nor its tied-weight record "
            "gives them data. Check the checkpoint's tensors and its 'lmhub.tied' metadata.",
            path=path,
        )


def check_ties(
    model: nn.Module, tied: Mapping[str, str], *, path: Path | str | None = None
) -> None:
    """Check that each ``alias -> source`` names two same-shaped tensors of ``model`` and that
    no source is itself an alias.

    Raises:
        ModelCheckpointError: naming the first bad tie.
    """
    shapes = {n: tuple(t.shape) for n, t in model.state_dict(keep_vars=True).items()}
    for alias, source in tied.items():
        problem = None
        if alias not in shapes:
            problem = f"the alias '{alias}' is not a tensor of the model"
        elif source not in shapes:
            problem = f"its source '{source}' is not a tensor of the model"
        elif alias == source or source in tied:
            problem = f"its source '{source}' is itself tied to another tensor"
        elif shapes[alias] != shapes[source]:
            problem = (
                f"'{alias}' has shape {shapes[alias]} in the model but '{source}' has shape "
                f"{shapes[source]}"
            )
        if problem is not None:
            raise ModelCheckpointError(
                f"The checkpoint{_at(path)} records the tie '{alias}' -> '{source}', but "
                f"{problem}. The tied-weight record does not fit this model: save the "
                "checkpoint again from a model of this architecture.",
                path=path,
            )


def _at(path: Path | str | None) -> str:
    return f" at {path}" if path is not None else ""


def _module_and_attr(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attr


def retie(model: nn.Module, alias: str, source: str) -> None:
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
