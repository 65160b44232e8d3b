"""Small helpers shared across lmhub: device and dtype parsing, default-dtype scoping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from lmhub.errors import ConfigError

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
    "fp64": torch.float64,
    "double": torch.float64,
}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """Return a ``torch.dtype`` for a dtype or a name such as ``"bf16"`` or ``"torch.float32"``.

    Example:
        >>> as_dtype("bf16")
        torch.bfloat16
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.").lower()
    if name not in _DTYPES:
        raise ConfigError(
            f"'{dtype}' is not a known dtype. Use one of: float32, bfloat16, float16, float64.",
            field="dtype",
            value=dtype,
        )
    return _DTYPES[name]


def as_device(device: torch.device | str | int | None) -> torch.device:
    """Return a ``torch.device`` (``None`` means CPU)."""
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"'{device}' is not a valid device. Use e.g. 'cpu', 'cuda' or 'cuda:1'.",
            field="device",
            value=device,
        ) from None


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype | str | None) -> Iterator[None]:
    """Set torch's default floating dtype inside the block and restore it on exit (also on error).

    Example:
        >>> with default_dtype(torch.bfloat16):
        ...     torch.empty(2).dtype
        torch.bfloat16
    """
    resolved = as_dtype(dtype)
    previous = torch.get_default_dtype()
    if resolved is not None:
        torch.set_default_dtype(resolved)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
