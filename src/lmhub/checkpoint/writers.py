"""Write checkpoints atomically: safetensors in the Hugging Face (sharded) layout, and small files.

Every writer builds its output next to the target, fsyncs it and then renames it into place, so
a crash or an exception mid-save leaves the previous checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import torch

from lmhub.checkpoint.readers import SAFETENSORS_DTYPES, SHARD_NAME

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "parse_size",
    "save_safetensors_sharded",
    "write_safetensors_file",
]

_DTYPE_CODES: dict[torch.dtype, str] = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_size(value: int | str) -> int:
    """Return a byte count from an int or a string such as ``"500MB"`` or ``"2GiB"``.

    Units follow Hugging Face: ``KB``/``MB``/``GB``/``TB`` are powers of 10 and
    ``KiB``/``MiB``/``GiB``/``TiB`` powers of 2; a bare number or ``B`` is bytes.

    >>> parse_size("500MB"), parse_size("2GiB"), parse_size(1024)
    (500000000, 2147483648, 1024)
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(
            f"The size {value!r} is neither an int nor a string; pass bytes as an int or a "
            "string such as '500MB' or '2GiB'."
        )
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE_RE.fullmatch(value)
        unit = match.group(2).upper() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"The size {value!r} is not understood; write a number with an optional unit "
                "out of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, such as '500MB' or '2GiB'."
            )
        # Fraction, not float: exact for integers of any size and for "1.5GB".
        size = int(Fraction(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"The size {value!r} is not positive; pass a size of at least 1 byte.")
    return size


# --------------------------------------------------------------------------------------------
# Small files


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    >>> atomic_write_bytes("out/tokenizer.model", blob)  # doctest: +SKIP
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 (not mkstemp's 0o600) so the file gets the usual umask permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`).

    >>> atomic_write_text("out/config.json", json.dumps(config, indent=2))  # doctest: +SKIP
    """
    atomic_write_bytes(path, text.encode(encoding))


def _fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable; a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Safetensors


def write_safetensors_file(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` to a new safetensors file at ``path`` (which must not exist), fsynced.

    Not atomic by itself: :func:`save_safetensors_sharded` calls it inside a temporary directory.

    >>> write_safetensors_file("t.safetensors", {"w": torch.zeros(2, 2)})  # doctest: +SKIP
    """
    for name, t in tensors.items():
        _check_tensor(name, t)
    # Copies only for tensors that are not CPU-contiguous, and only one shard's worth at a time.
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    # Widest elements first, so every tensor starts at a multiple of its element size (the
    # header is padded to 8 bytes) and readers can view it in place.
    names = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in names:
        t = tensors[name]
        header[name] = {
            "dtype": _DTYPE_CODES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "xb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in names:
            t = tensors[name]
            if t.nbytes:
                # A ctypes array over the tensor's memory: written without an extra copy.
                f.write((ctypes.c_ubyte * t.nbytes).from_address(t.data_ptr()))
        f.flush()
        os.fsync(f.fileno())


def save_safetensors_sharded(
    tensors: Mapping[str, torch.Tensor],
    directory: str | os.PathLike[str],
    *,
    max_shard_size: int | str = "5GB",
    metadata: dict[str, str] | None = None,
    filename_prefix: str = "model",
) -> list[Path]:
    """Save ``tensors`` in the Hugging Face layout and return the files written.

    One ``{prefix}.safetensors`` if everything fits in ``max_shard_size``; otherwise
    ``{prefix}-00001-of-0000N.safetensors``... plus ``{prefix}.safetensors.index.json``. Tensors
    are split in the mapping's order; one bigger than ``max_shard_size`` gets a shard of its own.
    Each shard's ``__metadata__`` is ``{"format": "pt"}`` updated with ``metadata``.

    The save is atomic: files are written and fsynced in a temporary directory next to
    ``directory`` and then renamed into place so that, killed at any instant, ``directory``
    loads as the previous checkpoint or as the new one. Where a shard name is still used by the
    previous save, the new shards get a random suffix (``model-00001-of-00002-1a2b3c4d...``).
    Other files in ``directory`` (``config.json``...) are kept, weight files of earlier saves
    are removed, and so are temporary directories that killed saves left behind.

    Raises:
        ValueError: Two names share storage (tied weights: save one of them), a dtype has no
            safetensors code, ``max_shard_size`` or ``metadata`` is malformed.

    >>> save_safetensors_sharded(model.state_dict(), "out", max_shard_size="2GB")  # doctest: +SKIP
    [PosixPath('out/model.safetensors')]
    """
    limit = parse_size(max_shard_size)
    meta = {"format": "pt", **(metadata or {})}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(
            f"The safetensors metadata {metadata!r} must map strings to strings; convert the "
            "values with str() or json.dumps()."
        )
    if not filename_prefix or Path(filename_prefix).name != filename_prefix:
        raise ValueError(
            f"The filename prefix {filename_prefix!r} is not a plain file name; pass something "
            "like 'model'."
        )
    _check_all(tensors)
    shards = _split(tensors, limit)

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"The checkpoint path {directory} is a file, not a directory; pass a directory path."
        )
    taken = set(os.listdir(directory)) if directory.is_dir() else set()
    names = _shard_names(filename_prefix, len(shards), taken)
    index_name = f"{filename_prefix}.safetensors.index.json"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with _staging_dir(directory) as staging:
        for name, shard in zip(names, shards):
            _write_shard(staging / name, shard, meta)
        new_files = list(names)
        if len(shards) > 1:
            weight_map = {key: name for name, shard in zip(names, shards) for key in shard}
            index = {
                "metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
                "weight_map": dict(sorted(weight_map.items())),
            }
            _write_new_file(staging / index_name, json.dumps(index, indent=2).encode() + b"\n")
            new_files.append(index_name)
        _fsync_dir(staging)
        _commit(staging, directory, new_files, filename_prefix)
    return [directory / name for name in new_files]


def _write_shard(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str]) -> None:
    # A module-level indirection, so tests can make a shard write fail part-way through a save.
    write_safetensors_file(path, tensors, metadata)


def _write_new_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _check_tensor(name: object, t: object) -> None:
    if not isinstance(name, str) or not name or name == "__metadata__":
        raise ValueError(f"The tensor name {name!r} is not allowed; use a non-empty string.")
    if not isinstance(t, torch.Tensor):
        raise ValueError(
            f"The value for {name!r} is a {type(t).__name__}, not a torch.Tensor; save only "
            "tensors."
        )
    if t.dtype not in _DTYPE_CODES:
        raise ValueError(
            f"The tensor {name!r} has dtype {t.dtype}, which safetensors cannot store; "
            f"convert it to one of {', '.join(sorted(map(str, _DTYPE_CODES)))}."
        )
    if t.device.type == "meta":
        raise ValueError(f"The tensor {name!r} is on the meta device and has no data to save.")


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """Return the ``[start, end)`` addresses the tensor's elements occupy."""
    extent = 1 + sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride()) if n)
    return t.data_ptr(), t.data_ptr() + extent * t.element_size()


def _check_all(tensors: Mapping[str, torch.Tensor]) -> None:
    """Check names and dtypes, and that no two tensors overlap in memory (tied weights).

    Disjoint views of one buffer are fine (every tensor read from a checkpoint file is one).
    """
    spans: list[tuple[str, int, int, str]] = []
    for name, t in tensors.items():
        _check_tensor(name, t)
        if t.numel():
            start, end = _byte_span(t)
            spans.append((str(t.device), start, end, name))
    spans.sort()
    for (dev_a, _, end_a, name_a), (dev_b, start_b, _, name_b) in itertools.pairwise(spans):
        if dev_a == dev_b and start_b < end_a:
            raise ValueError(
                f"The tensors {name_a!r} and {name_b!r} share storage (tied, or overlapping "
                "views of one tensor). Save only one of them, e.g. drop the tied copy and "
                "re-tie after loading, or .clone() one of them."
            )


def _split(tensors: Mapping[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        if shards[-1] and size + t.nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += t.nbytes
    return shards


def _shard_names(prefix: str, count: int, taken: set[str]) -> list[str]:
    """The Hugging Face shard names, or, where one of them is ``taken`` by a file of the
    previous save, the same names with a random suffix, so no live shard is ever overwritten."""
    if count == 1:
        return [f"{prefix}.safetensors"]
    names = [f"{prefix}-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    while set(names) & taken:
        tag = secrets.token_hex(4)
        names = [f"{prefix}-{i:05d}-of-{count:05d}-{tag}.safetensors" for i in range(1, count + 1)]
    return names


def _is_weight_file(name: str, prefix: str) -> bool:
    """Whether ``name`` is a weight file or index that a save with ``prefix`` may have written."""
    if name in (f"{prefix}.safetensors", f"{prefix}.safetensors.index.json"):
        return True
    shard = SHARD_NAME.fullmatch(name)
    return shard is not None and shard.group("prefix") == prefix


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _remove_stale_staging(target: Path) -> None:
    """Remove staging directories that killed saves to ``target`` left behind.

    Two saves to one directory at the same time are not supported: one may remove the other's
    staging directory, which then fails (leaving the checkpoint as it was).
    """
    stem = _staging_prefix(target)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(target.parent):
            if entry.name.startswith(stem) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def _staging_dir(target: Path) -> Iterator[Path]:
    """A fresh directory next to ``target`` (same filesystem, so renames are atomic)."""
    _remove_stale_staging(target)
    while True:
        staging = target.with_name(_staging_prefix(target) + secrets.token_hex(4))
        try:
            # os.mkdir, not mkdtemp: the directory may become the target, so it gets the usual
            # umask permissions rather than 0o700.
            staging.mkdir()
            break
        except FileExistsError:
            continue
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, target: Path, new_files: list[str], prefix: str) -> None:
    """Move the files in ``staging`` into ``target`` so that, should the process die at any
    instant, ``target`` loads as the previous checkpoint or as the new one, never neither.

    Readers prefer ``{prefix}.safetensors`` to the index and resolve shards through the index.
    New shards have names no file in ``target`` has (see :func:`_shard_names`), so they can be
    moved in while the old index still describes the old shards. Then one step switches over:
    replacing the single file, replacing the index, or (sharded after single) unlinking the old
    single file that shadowed the new index. Only then are the old weight files removed.
    """
    try:
        # Renaming onto a missing or empty directory swaps the whole checkpoint in one step.
        staging.rename(target)
        _fsync_dir(target.parent)
        return
    except OSError:
        if not target.is_dir():
            raise
    stale = {n for n in os.listdir(target) if _is_weight_file(n, prefix)} - set(new_files)
    index_name = f"{prefix}.safetensors.index.json"
    single_name = f"{prefix}.safetensors"
    if index_name not in new_files:
        os.replace(staging / single_name, target / single_name)  # the switch-over...
        _fsync_dir(target)
        if index_name in stale:
            # ...where readers prefer it to an old index; else removing the index is. Either
            # way the index goes before the shards it names.
            (target / index_name).unlink()
            stale.discard(index_name)
            _fsync_dir(target)
    else:
        for name in new_files:
            if name != index_name:
                os.replace(staging / name, target / name)  # fresh names: nothing live changes
        _fsync_dir(target)  # the shards are durable before the index that names them
        os.replace(staging / index_name, target / index_name)  # the switch-over...
        _fsync_dir(target)
        if single_name in stale:
            # ...unless an old single file shadows the index: removing it switches over.
            (target / single_name).unlink()
            stale.discard(single_name)
            _fsync_dir(target)
    for name in sorted(stale):
        (target / name).unlink(missing_ok=True)
    _fsync_dir(target)
