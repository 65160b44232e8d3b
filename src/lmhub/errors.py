"""Every exception lmhub raises on purpose, in one place.

Each error carries the facts as attributes (name, path, key, field, ...) and a message that is a
whole sentence saying what is wrong and what to do about it. All derive from :class:`LmhubError`,
so ``except lmhub.LmhubError`` catches any user-facing failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``candidates`` that look like ``name`` (for "did you mean")."""
    if not isinstance(name, str):  # a YAML key may be a number or null
        return []
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=0.5)


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, cut to ``limit`` characters (its type's name when
    it has none): a foreign exception quoted inside a one-line lmhub message."""
    lines = str(error).strip().splitlines()
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    matches = close_matches(name, candidates)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


class LmhubError(Exception):
    """Base class of every error lmhub raises for bad input or a bad environment."""


class ConfigError(LmhubError, ValueError):
    """A config field is unknown, or a value does not fit the field's type."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class ModelFamilyNotKnownError(LmhubError, LookupError):
    """No model family is registered under the given name."""

    def __init__(self, family: str, known: Sequence[str]) -> None:
        self.family = family
        self.known = list(known)
        super().__init__(
            f"The model family '{family}' is not known.{_did_you_mean(family, known)} "
            f"Run `lmhub families` to list the known families: {', '.join(sorted(known))}."
        )


class ModelArchitectureNotKnownError(LmhubError, LookupError):
    """The family has no architecture preset of the given name."""

    def __init__(self, arch: str, family: str, known: Sequence[str]) -> None:
        self.arch = arch
        self.family = family
        self.known = list(known)
        super().__init__(
            f"The model family '{family}' has no architecture '{arch}'."
            f"{_did_you_mean(arch, known)} Run `lmhub archs {family}` to list its architectures."
        )


class ModelNotKnownError(LmhubError, LookupError):
    """A name is neither an asset card nor an architecture preset nor a checkpoint directory."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        self.name = name
        self.known = list(known)
        super().__init__(
            f"'{name}' is not a known model card, architecture or checkpoint directory."
            f"{_did_you_mean(name, known)} Run `lmhub cards` or `lmhub archs` to see what is "
            "known, or pass a path to a directory with a config.json."
        )


class AssetCardError(LmhubError, ValueError):
    """An asset card is malformed, duplicated, or points at something that is not there."""

    def __init__(self, message: str, *, name: str | None = None, path: Path | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.path = path


class ModelCheckpointError(LmhubError, RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt, or does not fit the model."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class ChecksumMismatchError(ModelCheckpointError):
    """A checkpoint file's sha256 differs from the one its asset card declares."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"The checkpoint file {path} has sha256 {actual}, but its card declares {expected}. "
            "The file is corrupt or not the one the card names: download it again or fix the "
            "card's checksum.",
            path=path,
        )


class StateDictMismatchError(ModelCheckpointError):
    """Checkpoint keys or shapes do not fit the model; lists every problem at once."""

    def __init__(
        self,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        shape_mismatches: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        path: Path | str | None = None,
    ) -> None:
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shape_mismatches = list(shape_mismatches)
        where = f" at {path}" if path is not None else ""
        lines = [
            f"The checkpoint{where} does not fit the model: "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected and "
            f"{len(self.shape_mismatches)} mis-shaped tensors. Check that the checkpoint and the "
            "model config describe the same architecture."
        ]
        if self.missing:
            lines.append("Missing keys: " + ", ".join(self.missing))
        if self.unexpected:
            lines.append("Unexpected keys: " + ", ".join(self.unexpected))
        for key, want, got in self.shape_mismatches:
            lines.append(f"Shape mismatch for {key}: the model expects {want}, the file has {got}")
        super().__init__("\n".join(lines), path=path)
        self.where = where

    @property
    def summary(self) -> str:
        """The message in one line: the counts and the first few keys of each kind."""

        def some(keys: Sequence[str]) -> str:
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            return f" ({shown})" if keys else ""

        return (
            f"The checkpoint{self.where} does not fit the model: {len(self.missing)} missing"
            f"{some(self.missing)}, {len(self.unexpected)} unexpected{some(self.unexpected)} "
            f"and {len(self.shape_mismatches)} mis-shaped"
            f"{some([k for k, _, _ in self.shape_mismatches])} tensors. Check that the "
            "checkpoint and the model config describe the same architecture."
        )


class TokenizerError(LmhubError, ValueError):
    """A tokenizer file is missing or malformed, or a chat template cannot be rendered."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class ExportError(LmhubError, RuntimeError):
    """A model cannot be exported, or the export's output directory is in the way."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class GenerationError(LmhubError, ValueError):
    """Generation settings or inputs are invalid (a negative length, top_p out of range, ...)."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class OptionalDependencyError(LmhubError, ImportError):
    """A feature needs a package that is not installed."""

    def __init__(self, package: str, feature: str, extra: str) -> None:
        self.package = package
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed. "
            f"Install it with `pip install 'lmhub[{extra}]'`."
        )


class NonFiniteLossError(LmhubError, ArithmeticError):
    """A training or test step produced a NaN or infinite loss (or gradient norm)."""

    def __init__(self, step: int, loss: float, *, quantity: str = "loss") -> None:
        self.step = step
        self.loss = loss
        self.quantity = quantity
        super().__init__(
            f"The {quantity} at step {step} is {loss}, not a finite number. Lower the learning "
            "rate, train in float32, or check the model's initialisation and inputs."
        )


class TensorDtypeMismatchError(ModelCheckpointError):
    """Checkpoint tensors hold integers or bools where the model has floating-point weights."""

    def __init__(
        self,
        mismatches: Sequence[tuple[str, object, object]],
        *,
        path: Path | str | None = None,
    ) -> None:
        self.mismatches = list(mismatches)
        where = f" at {path}" if path is not None else ""
        key, want, got = self.mismatches[0]
        more = f" (and {len(self.mismatches) - 1} more)" if len(self.mismatches) > 1 else ""
        super().__init__(
            f"The checkpoint{where} stores '{key}' as {got}, but the model's weight is {want}"
            f"{more}; integer and bool tensors are not cast to floating point. Check that the "
            "checkpoint holds this model's weights, or convert them to a float dtype.",
            path=path,
        )


class CheckpointLayoutError(ModelCheckpointError):
    """The naming layout of a checkpoint (lmhub's or a family's external names) is unknown."""

    def __init__(
        self, message: str, *, path: Path | str | None = None, keys: Sequence[str] = ()
    ) -> None:
        super().__init__(message, path=path)
        self.keys = list(keys)


class HfConfigError(ModelCheckpointError):
    """A Hugging Face ``config.json`` is missing or unreadable, or holds a value lmhub cannot use.

    ``path`` is the file, ``key`` the ``config.json`` key at fault (``None`` for the whole file).
    """

    def __init__(
        self, message: str, *, path: Path | str, key: str | None = None, value: object = None
    ) -> None:
        super().__init__(message, path=path)
        self.key = key
        self.value = value


class UnusableDataError(LmhubError, ValueError):
    """YAML text or plain data from a user cannot be read, or is too deep or too large to use.

    ``reason`` is a clause ("it is not valid YAML: ..."); the config and card readers catch this
    and raise their own error naming the override, field, card or file.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"The data cannot be used: {reason}. Simplify it or fix the YAML.")


class DataError(LmhubError, ValueError):
    """A data file (or an example built from one) is unreadable, empty or malformed."""

    def __init__(
        self, message: str, *, path: Path | str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None
        self.line = line


class AdapterError(ModelCheckpointError):
    """A (PEFT-format) adapter directory is missing files, or holds settings or tensors that do
    not fit the model; or a model's adapters cannot be saved, merged or loaded as asked.

    ``path`` is the file at fault, ``key`` the ``adapter_config.json`` key or tensor name.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        key: str | None = None,
        value: object = None,
    ) -> None:
        super().__init__(message, path=path)
        self.key = key
        self.value = value


class WeightMapError(ModelCheckpointError):
    """A weight-map operation cannot turn the tensors of one key group into the other layout."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ParallelLayoutError(LmhubError, ValueError):
    """A requested parallel layout cannot be built: a size does not divide another (world size,
    heads, key-value heads, FFN width), the environment lacks what torchrun sets, or the family
    has no tensor-parallel plan.

    ``field`` names the size at fault (e.g. ``"num_kv_heads"``), ``value`` its value and
    ``divisor`` what it must be a multiple of.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: object = None,
        divisor: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.divisor = divisor


class UnsupportedMaskError(LmhubError, ValueError):
    """A model cannot honour the attention mask it was given (a recurrent layer's state runs
    along the whole row, so it cannot keep packed documents apart).

    ``family`` names the model family and ``shape`` is the mask's shape.
    """

    def __init__(self, message: str, *, family: str, shape: tuple[int, ...]) -> None:
        super().__init__(message)
        self.family = family
        self.shape = shape


class ForwardInputError(LmhubError, ValueError):
    """A block was called without an input its configuration needs (a KV-sharing attention
    layer without the keys and values of its source layer, a layer with per-layer embeddings
    without its slice of them)."""


class LmTypeError(ConfigError, LookupError):
    """An ``lm_type`` that names no usable LM type."""

    def __init__(self, name: str, known: Sequence[str], *, reason: str | None = None) -> None:
        self.name = name
        self.known = list(known)
        self.reason = reason
        what = reason or "is not a known LM type"
        super().__init__(
            f"The lm_type {name!r} {what}.{_did_you_mean(name, known)} The known types are: "
            f"{', '.join(sorted(known))}; a "
            "module path whose LM_TYPE is an LmType (lm_type=my_pkg.my_type) works too.",
            field="lm_type",
            value=name,
        )


class CompileError(LmhubError, RuntimeError):
    """``torch.compile`` could not trace or build a training layer (``compile: true``)."""

    def __init__(self, layer: str, reason: str) -> None:
        self.layer = layer
        self.reason = reason
        super().__init__(
            f"Compiling {layer} with torch.compile failed: {reason} Set compile: false to "
            "train eagerly (same results, slower), or install a C++ compiler if inductor "
            "reports none."
        )
