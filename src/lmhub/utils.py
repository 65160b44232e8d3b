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
    """Return a ``torch.device`` (``None`` means CPU), checking that this machine has it.

    Raises :class:`~lmhub.errors.ConfigError` for a malformed name (``"cdua"``) and for a device
    this PyTorch build or machine lacks (``"cuda"`` on a CPU-only install, ``"cuda:7"`` with
    one GPU), instead of the assertion PyTorch raises on first use.

    Example:
        >>> as_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"'{device}' is not a valid device. Use e.g. 'cpu', 'cuda' or 'cuda:1'.",
            field="device",
            value=device,
        ) from None
    if parsed.type not in ("cpu", "meta"):
        try:
            torch.empty(0, device=parsed)
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise ConfigError(
                f"The device '{parsed}' is not available on this machine ({reason}). Use 'cpu', "
                "or a device this PyTorch build and machine have.",
                field="device",
                value=str(device),
            ) from None
    return parsed


SEED_RANGE = (0, 2**64 - 1)
"""The seeds ``torch.manual_seed`` accepts without overflowing (inclusive)."""


def check_seed(seed: int) -> int:
    """Return ``seed`` if ``torch.manual_seed`` takes it, else raise :class:`ConfigError`."""
    low, high = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high:
        raise ConfigError(
            f"The seed {seed!r} is out of range; pass an integer from {low} to {high} (2**64 - 1).",
            field="seed",
            value=seed,
        )
    return seed


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


# The in-place tensor methods that initialisers end in: skipped on parameters by no_init_weights.
_INIT_METHODS = frozenset(
    getattr(torch.Tensor, name)
    for name in (
        "normal_",
        "uniform_",
        "fill_",
        "zero_",
        "bernoulli_",
        "cauchy_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "random_",
    )
)


def _nn_init_functions() -> list[str]:
    """The public in-place initialisers of ``torch.nn.init`` (``normal_``, ``xavier_normal_``)."""
    return [
        name
        for name, fn in vars(torch.nn.init).items()
        if name.endswith("_")
        and not name.startswith("_")
        and callable(fn)
        and getattr(fn, "__module__", None) == "torch.nn.init"
    ]


def _return_tensor(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


class _SkipParameterInit(torch.overrides.TorchFunctionMode):
    """Skips initialisers that reach parameters without going through ``torch.nn.init``'s
    module attributes (``from torch.nn.init import normal_`` bindings, ``p.normal_()``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        is_init = func in _INIT_METHODS or getattr(func, "__module__", None) == "torch.nn.init"
        if is_init and args and isinstance(args[0], torch.nn.Parameter):
            return args[0]
        return func(*args, **kwargs)


@contextlib.contextmanager
def no_init_weights() -> Iterator[None]:
    """Make weight initialisation a no-op inside the block, for models whose weights come later.

    Every public ``torch.nn.init`` initialiser returns its tensor untouched, so modules'
    ``reset_parameters`` (``nn.Linear``, ``nn.Embedding``, lmhub's models) leave freshly allocated
    parameters as they are; in-place random and fill methods called on parameters
    (``p.normal_()``, ``p.fill_(1)``) are skipped too. Everything is restored on exit, also on an
    exception, and nesting is fine. The patch is process-wide: do not build models on other
    threads meanwhile.

    Example:
        >>> with no_init_weights():
        ...     layer = torch.nn.Linear(4096, 4096)   # allocated, not initialised
    """
    saved = {name: getattr(torch.nn.init, name) for name in _nn_init_functions()}
    try:
        for name in saved:
            setattr(torch.nn.init, name, _return_tensor)
        with _SkipParameterInit():
            yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)
