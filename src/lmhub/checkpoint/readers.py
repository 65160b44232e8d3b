"""Read model checkpoints (safetensors or PyTorch pickles, single-file or sharded) as tensors.

:func:`open_checkpoint` finds the weight files behind a path and returns a
:class:`CheckpointReader` that lists the tensor names cheaply and yields the tensors one at a
time, file by file, so a loader never holds more than one shard's worth of new memory.

Safetensors files are parsed here rather than through the ``safetensors`` package: the format
is an 8-byte little-endian header length, a JSON header, then the raw tensor bytes, so with
``mmap=True`` every tensor can be a zero-copy view of one private memory map per file.
:meth:`CheckpointReader.iter_lazy` instead yields tensors not read yet
(:mod:`lmhub.checkpoint.lazy`), of which a tensor-parallel load reads only its slices.
"""

from __future__ import annotations

import abc
import ctypes
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch

from lmhub.checkpoint.lazy import FileRegion, LazyTensor, MemoryTensor, ReadLog, StoredTensor
from lmhub.errors import ModelCheckpointError, first_line

__all__ = [
    "SAFETENSORS_DTYPES",
    "SHARD_NAME",
    "CheckpointReader",
    "SafetensorsHeader",
    "SafetensorsReader",
    "TensorInfo",
    "TorchPickleReader",
    "open_checkpoint",
    "read_safetensors_header",
]

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Codes whose torch dtype only exists in some torch versions.
for _code, _attr in [
    ("U16", "uint16"),
    ("U32", "uint32"),
    ("U64", "uint64"),
    ("F8_E4M3", "float8_e4m3fn"),
    ("F8_E5M2", "float8_e5m2"),
]:
    if hasattr(torch, _attr):
        SAFETENSORS_DTYPES[_code] = getattr(torch, _attr)

_SAFETENSORS_SUFFIXES = (".safetensors",)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
_INDEX_SUFFIX = ".index.json"
SHARD_NAME = re.compile(r"(?P<prefix>.+)-\d+-of-\d+(-[0-9a-f]{8})?\.safetensors")
"""Names of safetensors shards (``model-00001-of-00004.safetensors``, optionally with the random
suffix a re-save gives them); on their own, without an index, they are not a checkpoint."""
# The safetensors reference implementation refuses larger headers; so do we, rather than
# reading gigabytes of "JSON" from a damaged length field.
_MAX_HEADER_BYTES = 100_000_000
# torch counts elements and strides in int64.
_MAX_NUMEL = 2**63 - 1


# --------------------------------------------------------------------------------------------
# Safetensors header


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file; ``start``/``end`` are absolute offsets."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed header of one safetensors file, tensors ordered by their place in the file."""

    path: Path
    file_size: int
    data_start: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def _corrupt(path: Path, detail: str) -> ModelCheckpointError:
    return ModelCheckpointError(
        f"The safetensors file {path} is corrupt or truncated: {detail}. "
        "Download or save it again.",
        path=path,
    )


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Parse and validate the header of a safetensors file without reading any tensor data.

    Every offset is checked against the file size, so views built from the result never reach
    past the end of the file.

    >>> header = read_safetensors_header("model.safetensors")  # doctest: +SKIP
    >>> list(header.tensors)[:2]  # doctest: +SKIP
    ['lm_head.weight', 'model.embed_tokens.weight']
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            if file_size < 8:
                raise _corrupt(path, f"it is only {file_size} bytes long")
            header_len = int.from_bytes(f.read(8), "little")
            if header_len > _MAX_HEADER_BYTES:
                raise _corrupt(path, f"its header length {header_len} exceeds the 100 MB limit")
            if header_len > file_size - 8:
                raise _corrupt(
                    path,
                    f"the header length {header_len} runs past the end of the "
                    f"{file_size}-byte file",
                )
            raw = f.read(header_len)
    except OSError as e:
        raise ModelCheckpointError(
            f"The checkpoint file {path} could not be read ({e.strerror or e}). "
            "Check that it exists and that you may read it.",
            path=path,
        ) from e
    header = _parse_json(raw, lambda detail: _corrupt(path, f"its header {detail}"))
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _corrupt(path, "its __metadata__ is not a mapping of strings to strings")

    data_start = 8 + header_len
    data_size = file_size - data_start
    infos = [
        _tensor_info(path, name, entry, data_start, data_size) for name, entry in header.items()
    ]
    infos.sort(key=lambda info: (info.start, info.end))
    # Two tensors sharing bytes would alias each other's data once loaded.
    last: TensorInfo | None = None
    for info in infos:
        if info.start == info.end:
            continue
        if last is not None and info.start < last.end:
            raise _corrupt(
                path,
                f"the tensors {last.name!r} and {info.name!r} overlap (bytes "
                f"{last.start - data_start}..{last.end - data_start} and "
                f"{info.start - data_start}..{info.end - data_start} of the data section)",
            )
        last = info
    return SafetensorsHeader(
        path=path,
        file_size=file_size,
        data_start=data_start,
        tensors={info.name: info for info in infos},
        metadata=dict(metadata),
    )


def _tensor_info(
    path: Path, name: str, entry: object, data_start: int, data_size: int
) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _corrupt(path, f"the header entry for {name!r} is not a JSON object")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(code, str) or code not in SAFETENSORS_DTYPES:
        raise _corrupt(
            path, f"the tensor {name!r} has the unknown or unsupported dtype {_short(code)}"
        )
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _corrupt(path, f"the tensor {name!r} has the invalid shape {_short(shape)}")
    # torch sizes and strides are int64: every dimension, and the elements counted with zero
    # dimensions taken as one (the largest stride), must fit.
    extent = 1
    for d in shape:
        extent *= max(d, 1)
    if extent > _MAX_NUMEL:
        raise _corrupt(
            path, f"the tensor {name!r} has the shape {_short(shape)}, too large for torch"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise _corrupt(path, f"the tensor {name!r} has invalid data_offsets {_short(offsets)}")
    begin, end = offsets
    dtype = SAFETENSORS_DTYPES[code]
    numel = 0 if 0 in shape else extent
    if end < begin or end - begin != numel * dtype.itemsize:
        raise _corrupt(
            path,
            f"the tensor {name!r} spans bytes {begin}..{end}, which does not fit its shape "
            f"{shape} and dtype {code}",
        )
    if end > data_size:
        raise _corrupt(
            path,
            f"the tensor {name!r} ends at byte {end} of the data section, past its end at "
            f"byte {data_size}",
        )
    return TensorInfo(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _short(value: object) -> str:
    """``repr(value)``, cut short: header values come from untrusted files."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_json(raw: bytes, error: Callable[[str], Exception]) -> object:
    """Parse untrusted JSON; any failure (bad UTF-8, syntax, nesting too deep for the parser,
    an integer too long to convert) becomes ``error(detail)``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise error("is nested too deeply to be read") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int digit limits
        raise error(f"is not valid JSON ({_short(str(e))})") from None


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


def _view(storage: torch.UntypedStorage, info: TensorInfo, base: int = 0) -> torch.Tensor:
    """A tensor viewing ``storage`` at ``info``'s bytes; ``base`` is the storage's file offset."""
    if info.start == info.end:
        return torch.empty(info.shape, dtype=info.dtype)
    offset = info.start - base
    itemsize = info.dtype.itemsize
    if offset % itemsize == 0:
        return torch.empty(0, dtype=info.dtype).set_(
            storage, offset // itemsize, info.shape, _contiguous_strides(info.shape)
        )
    # A torch storage offset counts whole elements, so a misaligned tensor cannot be a view.
    raw = torch.empty(0, dtype=torch.uint8).set_(storage, offset, (info.end - info.start,), (1,))
    return raw.clone().view(info.dtype).reshape(info.shape)


def _read_data(header: SafetensorsHeader) -> torch.UntypedStorage:
    """Read a file's whole data section into fresh memory with one read (short reads retried)."""
    size = header.file_size - header.data_start
    buffer = torch.empty(size, dtype=torch.uint8)
    # ctypes gives a writable view of the tensor's memory without needing numpy.
    view = memoryview((ctypes.c_ubyte * size).from_address(buffer.data_ptr())).cast("B")
    with open(header.path, "rb", buffering=0) as f:
        f.seek(header.data_start)
        done = 0
        while done < size:
            n = f.readinto(view[done:])
            if not n:
                raise _corrupt(header.path, "the file ended before its last tensor")
            done += n
    return buffer.untyped_storage()


# --------------------------------------------------------------------------------------------
# Readers


class CheckpointReader(abc.ABC):
    """Tensors of one checkpoint, which may span several files.

    Use as a context manager; tensors already yielded stay valid after :meth:`close`.

    >>> with open_checkpoint("path/to/model") as reader:  # doctest: +SKIP
    ...     state = dict(reader.iter_tensors())
    """

    def __init__(self, paths: list[Path]) -> None:
        self.paths: list[Path] = list(paths)
        self._closed = False
        self.read_log = ReadLog()
        """Bytes read per tensor name by the lazy tensors of :meth:`iter_lazy` (safetensors)."""

    @abc.abstractmethod
    def keys(self) -> list[str]:
        """Return every tensor name, reading only headers or the index where possible."""

    @abc.abstractmethod
    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, tensor)`` pairs one at a time, file by file."""

    def iter_lazy(self) -> Iterator[tuple[str, LazyTensor]]:
        """Yield ``(name, lazy tensor)`` pairs: nothing is read until a (part of a) tensor is
        :meth:`~lmhub.checkpoint.lazy.LazyTensor.read`, and then only that part where the format
        allows (safetensors: positioned reads of the selected bytes). This base version wraps
        :meth:`iter_tensors`, which formats without random access read whole."""
        for name, tensor in self.iter_tensors():
            yield name, StoredTensor(MemoryTensor(tensor, name))

    def metadata(self) -> dict[str, str]:
        """Return the safetensors ``__metadata__`` of all files merged; ``{}`` for pickles."""
        self._check_open()
        return {}

    def close(self) -> None:
        """Drop the reader's cached state; calling it twice is harmless."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(
                f"The checkpoint reader for {self.paths[0]} is closed. Open it again with "
                "open_checkpoint()."
            )

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        files = ", ".join(p.name for p in self.paths)
        return f"{type(self).__name__}({files})"


class SafetensorsReader(CheckpointReader):
    """Reads safetensors files, zero-copy with ``mmap=True`` or with one read per file."""

    def __init__(
        self,
        paths: list[Path],
        *,
        mmap: bool = False,
        weight_map: Mapping[str, Path] | None = None,
        index_path: Path | None = None,
    ) -> None:
        super().__init__(paths)
        self.mmap = mmap
        self._headers = [read_safetensors_header(p) for p in self.paths]
        if weight_map is not None:
            _check_shards_match_index(
                {h.path: h.tensors.keys() for h in self._headers}, weight_map, index_path
            )

    def keys(self) -> list[str]:
        self._check_open()
        return [name for h in self._headers for name in h.tensors]

    def metadata(self) -> dict[str, str]:
        self._check_open()
        merged: dict[str, str] = {}
        for h in self._headers:
            merged.update(h.metadata)
        return merged

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        self._check_open()
        for header in self._headers:
            if not header.tensors:
                continue
            if self.mmap:
                # One private (copy-on-write) mapping per file: writes never reach the file,
                # and the mapping lives as long as any tensor viewing it.
                storage = torch.UntypedStorage.from_file(
                    str(header.path), shared=False, nbytes=header.file_size
                )
                base = 0
            else:
                storage, base = _read_data(header), header.data_start
            for name, info in header.tensors.items():
                yield name, _view(storage, info, base)
            del storage

    def iter_lazy(self) -> Iterator[tuple[str, LazyTensor]]:
        self._check_open()
        for header in self._headers:
            for name, info in header.tensors.items():
                region = FileRegion(
                    header.path, name, info.dtype, info.shape, info.start, self.read_log
                )
                yield name, StoredTensor(region)

    def close(self) -> None:
        self._headers = []
        super().close()


class TorchPickleReader(CheckpointReader):
    """Reads ``torch.save`` files; restricted (``weights_only``) unpickling unless told not to."""

    def __init__(
        self,
        paths: list[Path],
        *,
        mmap: bool = False,
        restrict: bool = True,
        weight_map: Mapping[str, Path] | None = None,
        index_path: Path | None = None,
    ) -> None:
        super().__init__(paths)
        self.mmap = mmap
        self.restrict = restrict
        self._weight_map = dict(weight_map) if weight_map is not None else None
        self._index_path = index_path
        self._keys: list[str] | None = None

    def keys(self) -> list[str]:
        self._check_open()
        if self._keys is None:
            if self._weight_map is not None:
                self._keys = list(self._weight_map)
            else:
                # Memory-mapped loading only touches the pickle, not the tensor bytes.
                self._keys = [k for p in self.paths for k in self._load(p, mmap=True)]
        return list(self._keys)

    def iter_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        self._check_open()
        for path in self.paths:
            state = self._load(path, mmap=self.mmap)
            if self._weight_map is not None:
                _check_shards_match_index({path: state.keys()}, self._weight_map, self._index_path)
            yield from state.items()
            del state

    def _load(self, path: Path, *, mmap: bool) -> dict[str, torch.Tensor]:
        # torch.load(mmap=True) needs the zip format; old-style files are read into memory.
        mmap = mmap and zipfile.is_zipfile(path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=self.restrict, mmap=mmap)
        except pickle.UnpicklingError as e:
            raise _unpickling_error(path, e, self.restrict) from None
        except (AttributeError, ImportError) as e:  # full unpickling: a class that is gone
            raise ModelCheckpointError(
                f"The PyTorch checkpoint file {path} refers to code that cannot be imported "
                f"here ({first_line(e)}). Install what it was saved with, or save only the "
                "tensors (torch.save(model.state_dict(), path)) where the file was made.",
                path=path,
            ) from e
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
            raise ModelCheckpointError(
                f"The PyTorch checkpoint file {path} could not be read ({first_line(e)}). "
                "It is corrupt, truncated or not a torch.save file: download or save it again.",
                path=path,
            ) from e
        return _state_dict_of(path, obj)


# How torch's weights-only unpickler words a refusal (torch 2.4 to 2.13), most specific first:
# (pattern, whether the refused thing comes from a module torch always blocks).
_REFUSALS: list[tuple[re.Pattern[str], bool]] = [
    (re.compile(r"GLOBAL (\S+) whose module (\S+) is blocked"), True),
    (re.compile(r"Unsupported global: GLOBAL (\S+)"), False),
    (re.compile(r"unrecognized function (.+?)(?: which belongs to |$)", re.MULTILINE), False),
    (re.compile(r"allowlisted via `add_safe_globals`,? but got (.+?)$", re.MULTILINE), False),
    (re.compile(r"(\S+) must be imported to load"), False),
]


def refused_global(message: str) -> tuple[str, bool] | None:
    """Return ``(what was refused, whether its module is always blocked)`` from the message of
    a restricted ``torch.load`` refusal, or ``None`` if the message is not a refusal."""
    for pattern, blocked in _REFUSALS:
        found = pattern.search(message)
        if found:
            return found.group(1).strip("`'\"."), blocked
    return None


def _unpickling_error(path: Path, e: Exception, restrict: bool) -> ModelCheckpointError:
    # Never suggest full unpickling here: the file may be an attack, and the user can choose
    # it knowingly from open_checkpoint's documentation.
    refused = refused_global(str(e)) if restrict else None
    if refused is not None and refused[1]:
        return ModelCheckpointError(
            f"The PyTorch checkpoint file {path} refers to {refused[0]}, from a module that "
            "restricted (weights-only) loading always blocks because it can run commands. The "
            "file may be malicious: do not load it, and get the weights as safetensors from a "
            "source you trust.",
            path=path,
        )
    if refused is not None:
        return ModelCheckpointError(
            f"The PyTorch checkpoint file {path} refers to {refused[0]}, which restricted "
            "(weights-only) loading refuses because unpickling it could run arbitrary code. Get "
            "the weights as a safetensors file, or save only the tensors where the file was made "
            "(torch.save(model.state_dict(), path)).",
            path=path,
        )
    return ModelCheckpointError(
        f"The PyTorch checkpoint file {path} could not be unpickled ({_unpickler_detail(e)}); "
        "it is corrupt or not a torch.save file: download or save it again.",
        path=path,
    )


def _unpickler_detail(e: Exception) -> str:
    """The unpickler's own complaint, without torch's advice to turn restricted loading off."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    own = [
        line
        for line in lines
        if "weights_only" not in line and not line.startswith("Check the documentation")
    ]
    return _short(own[-1]) if own else type(e).__name__


def _state_dict_of(path: Path, obj: object) -> dict[str, torch.Tensor]:
    """Return ``obj`` as a flat state dict, unwrapping ``{"model": ...}``-style training saves."""
    if isinstance(obj, Mapping):
        if _is_state_dict(obj):
            return dict(obj)
        nested = [k for k in ("model", "state_dict") if _is_state_dict(obj.get(k))]
        if len(nested) == 1:
            return dict(obj[nested[0]])
        if len(nested) > 1:
            raise ModelCheckpointError(
                f"The PyTorch checkpoint file {path} holds state dicts under both 'model' and "
                "'state_dict', so it is unclear which to load. Save the one you want on its own "
                "with torch.save(state_dict, path).",
                path=path,
            )
        bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:5]
        raise ModelCheckpointError(
            f"The PyTorch checkpoint file {path} is not a state dict: the entries "
            f"{', '.join(map(repr, bad))} are not tensors and there is no nested state dict under "
            "'model' or 'state_dict'. Save a mapping of names to tensors with "
            "torch.save(model.state_dict(), path).",
            path=path,
        )
    raise ModelCheckpointError(
        f"The PyTorch checkpoint file {path} holds a {type(obj).__name__}, not a state dict. "
        "Save a mapping of names to tensors with torch.save(model.state_dict(), path).",
        path=path,
    )


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


# --------------------------------------------------------------------------------------------
# Sharded checkpoints


def _read_index(index_path: Path) -> dict[str, Path]:
    """Return the index's ``weight_map`` with each shard resolved next to the index file."""
    try:
        raw = index_path.read_bytes()
    except OSError as e:
        raise ModelCheckpointError(
            f"The checkpoint index {index_path} could not be read ({e.strerror or e}). "
            "Check that it exists and that you may read it.",
            path=index_path,
        ) from e
    index = _parse_json(
        raw,
        lambda detail: ModelCheckpointError(
            f"The checkpoint index {index_path} {detail}. Download or save the checkpoint again.",
            path=index_path,
        ),
    )
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ModelCheckpointError(
            f"The checkpoint index {index_path} has no 'weight_map' object mapping tensor names "
            "to shard file names. Download or save the checkpoint again.",
            path=index_path,
        )
    resolved: dict[str, Path] = {}
    shards: dict[str, Path] = {}
    for key, name in weight_map.items():
        if name not in shards:
            shard = Path(name)
            # A shard must be a plain file name: an index must not point outside its directory.
            if not name or shard.is_absolute() or ".." in shard.parts:
                raise ModelCheckpointError(
                    f"The checkpoint index {index_path} names the shard {name!r}, which is not a "
                    "file name inside the checkpoint directory. Fix or regenerate the index.",
                    path=index_path,
                )
            shards[name] = index_path.parent / shard
            if not shards[name].is_file():
                raise ModelCheckpointError(
                    f"The shard {shards[name]} listed in the checkpoint index {index_path} does "
                    "not exist. Download the missing shard or save the checkpoint again.",
                    path=shards[name],
                )
        resolved[key] = shards[name]
    return resolved


def _check_shards_match_index(
    shard_keys: Mapping[Path, Iterable[str]],
    weight_map: Mapping[str, Path],
    index_path: Path | None,
) -> None:
    """Check that each shard holds exactly the keys the index assigns to it."""
    expected: dict[Path, set[str]] = {}
    for key, shard in weight_map.items():
        expected.setdefault(shard, set()).add(key)
    for shard, keys in shard_keys.items():
        have = set(keys)
        want = expected.get(shard, set())
        missing = sorted(want - have)
        if missing:
            raise ModelCheckpointError(
                f"The shard {shard} lacks the tensor {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f" that the index {index_path} assigns to it. The shard and the index come "
                "from different saves: download or save the checkpoint again.",
                path=shard,
            )
        extra = sorted(have - want)
        if extra:
            raise ModelCheckpointError(
                f"The shard {shard} holds the tensor {extra[0]!r}"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                + f" that the index {index_path} does not assign to it. The shard and the index "
                "come from different saves: download or save the checkpoint again.",
                path=shard,
            )


# --------------------------------------------------------------------------------------------
# Finding the files behind a path


def open_checkpoint(
    path: str | os.PathLike[str], *, mmap: bool = False, restrict: bool | None = None
) -> CheckpointReader:
    """Open the checkpoint at ``path``: a weight file, an index JSON, or a directory.

    In a directory, the first of these wins: ``model.safetensors``,
    ``model.safetensors.index.json``, the only ``*.safetensors.index.json``, the only
    ``*.safetensors``, ``pytorch_model.bin``, ``pytorch_model.bin.index.json``, the only
    ``*.pt``/``*.pth``.

    Args:
        path: A file or a checkpoint directory.
        mmap: Memory-map the files instead of reading them: tensors are then zero-copy,
            copy-on-write views (writing to them never changes the file).
        restrict: Unpickle PyTorch files with ``torch.load(weights_only=True)``. ``None`` means
            ``True``; pass ``False`` only for trusted files, since full unpickling can run code.

    >>> with open_checkpoint("checkpoints/llama", mmap=True) as reader:  # doctest: +SKIP
    ...     for name, tensor in reader.iter_tensors():
    ...         model_state[name].copy_(tensor)
    """
    path = Path(path)
    restrict = True if restrict is None else bool(restrict)
    if not path.exists():
        raise ModelCheckpointError(
            f"The checkpoint path {path} does not exist. Check the path, or download the "
            "checkpoint first.",
            path=path,
        )
    target = _find_weights(path) if path.is_dir() else path
    name = target.name

    index_path: Path | None = None
    weight_map: dict[str, Path] | None = None
    if name.endswith(_INDEX_SUFFIX):
        index_path = target
        weight_map = _read_index(target)
        files = sorted(set(weight_map.values()))
        name = name[: -len(_INDEX_SUFFIX)]
    else:
        files = [target]

    if name.endswith(_SAFETENSORS_SUFFIXES):
        return SafetensorsReader(files, mmap=mmap, weight_map=weight_map, index_path=index_path)
    if name.endswith(_PICKLE_SUFFIXES):
        return TorchPickleReader(
            files, mmap=mmap, restrict=restrict, weight_map=weight_map, index_path=index_path
        )
    raise ModelCheckpointError(
        f"The file {target} is not a known checkpoint format. Pass a .safetensors, .bin, .pt "
        "or .pth file, an .index.json for sharded weights, or a checkpoint directory.",
        path=target,
    )


def _find_weights(directory: Path) -> Path:
    """Pick the weight file (or index) of a checkpoint directory, preferring safetensors."""
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    if not files:
        raise ModelCheckpointError(
            f"The checkpoint directory {directory} is empty. Download or save the checkpoint "
            "into it first.",
            path=directory,
        )
    choices = [
        ["model.safetensors"],
        ["model.safetensors.index.json"],
        [f for f in files if f.endswith(".safetensors.index.json")],
        # Shards belong to an index: a lone non-shard file wins over shards left beside it
        # (a save that was switching between the two layouts may leave both for a moment).
        [f for f in files if f.endswith(".safetensors") and not SHARD_NAME.fullmatch(f)],
        [f for f in files if f.endswith(".safetensors")],
        ["pytorch_model.bin"],
        ["pytorch_model.bin.index.json"],
        [f for f in files if f.endswith((".pt", ".pth"))],
    ]
    present = set(files)
    ambiguous: list[str] = []
    for group in choices:
        found = [f for f in group if f in present]
        if len(found) == 1:
            return directory / found[0]
        ambiguous = ambiguous or found
    if ambiguous:
        raise ModelCheckpointError(
            f"The checkpoint directory {directory} holds several candidate weight files "
            f"({', '.join(ambiguous)}) and no index that ties them together. Pass the path of "
            "the file to load, or add a model.safetensors.index.json.",
            path=directory,
        )
    raise ModelCheckpointError(
        f"The checkpoint directory {directory} holds no weight files (found "
        f"{', '.join(files[:10])}{', ...' if len(files) > 10 else ''}). Expected "
        "model.safetensors, a *.safetensors.index.json, pytorch_model.bin or a single "
        "*.pt/*.pth file.",
        path=directory,
    )
