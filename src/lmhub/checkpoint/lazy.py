"""Tensors described but not read yet, so a loader can cut them to the part it needs first.

A :class:`LazyTensor` knows its shape and dtype and supports the few view operations the weight
map's ops and a tensor-parallel split need: :meth:`~LazyTensor.narrow`,
:meth:`~LazyTensor.select_indices` (rows picked along one dimension, as a grouped
:class:`~lmhub.checkpoint.weight_map.Chunk` does), :meth:`~LazyTensor.transpose`, and joining
(:func:`lazy_cat`, :func:`lazy_stack`). Only :meth:`~LazyTensor.read` touches data, and it reads
just the selected elements: a file-backed tensor (:class:`StoredTensor`) with positioned reads,
never through a memory map, so nothing a rank left out ever enters its memory or its page tables.

Example:
    >>> lazy = dict(open_checkpoint("phi3-hf").iter_lazy())  # doctest: +SKIP
    >>> fused = lazy["model.layers.0.self_attn.qkv_proj.weight"]  # doctest: +SKIP
    >>> q = fused.narrow(0, 0, 3072)  # doctest: +SKIP
    >>> q.narrow(0, 0, 1536).read()  # reads those rows of the file only  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import ctypes
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from lmhub.errors import ModelCheckpointError

__all__ = [
    "FileRegion",
    "LazyTensor",
    "MaybeLazy",
    "MemoryTensor",
    "ReadLog",
    "StoredTensor",
    "TensorSource",
    "lazy_cat",
    "lazy_stack",
    "read_all",
]


@dataclass
class ReadLog:
    """Bytes read per stored tensor name, for a reader to report what a load really read."""

    bytes_by_name: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, nbytes: int) -> None:
        self.bytes_by_name[name] = self.bytes_by_name.get(name, 0) + nbytes

    @property
    def total(self) -> int:
        """All bytes read."""
        return sum(self.bytes_by_name.values())


class TensorSource(Protocol):
    """Where a stored tensor's elements come from: a file region or a tensor in memory."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    def read_box(self, index: Sequence[torch.Tensor]) -> torch.Tensor:
        """Return ``stored[index[0]][:, index[1]]...``: the elements at every combination of
        the given indices along each dimension, as a fresh contiguous tensor."""
        ...


_MIN_RUN_BYTES = 4096
"""Selections whose contiguous runs average fewer bytes are read as the span covering them."""


def _runs(index: torch.Tensor) -> list[tuple[int, int]]:
    """Split sorted-or-not indices into ``(start, length)`` runs of consecutive values."""
    values = index.tolist()
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and runs[-1][0] + runs[-1][1] == v:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    return runs


def _is_full(index: torch.Tensor, extent: int) -> bool:
    return index.numel() == extent and bool(
        torch.equal(index, torch.arange(extent, dtype=index.dtype))
    )


@dataclass
class FileRegion:
    """A tensor stored contiguously (row-major) at bytes ``start`` .. of the file ``path``."""

    path: Path
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    log: ReadLog | None = None

    def read_box(self, index: Sequence[torch.Tensor]) -> torch.Tensor:
        index = list(index)
        if any(i.numel() == 0 for i in index):
            return torch.empty([int(i.numel()) for i in index], dtype=self.dtype)
        itemsize = self.dtype.itemsize
        strides = [1] * len(self.shape)
        for d in range(len(self.shape) - 2, -1, -1):
            strides[d] = strides[d + 1] * self.shape[d + 1]
        # Trailing dimensions taken whole are one contiguous block per index of the others.
        k = len(self.shape)
        while k > 0 and _is_full(index[k - 1], self.shape[k - 1]):
            k -= 1
        if k == 0:
            return self._read([(self.start, math.prod(self.shape) * itemsize)], list(self.shape))
        block = strides[k - 1] * itemsize
        runs = _runs(index[k - 1])
        if len(runs) > 1 and index[k - 1].numel() * block < len(runs) * _MIN_RUN_BYTES:
            # Many short runs (every other row, say): read the span that covers them, then
            # pick the rows in memory, rather than making a system call per few bytes.
            low, high = int(index[k - 1].min()), int(index[k - 1].max())
            span = [*index[: k - 1], torch.arange(low, high + 1), *index[k:]]
            return self.read_box(span).index_select(k - 1, index[k - 1] - low)
        outer = [0]
        for d in range(k - 1):
            outer = [o + i * strides[d] * itemsize for o in outer for i in index[d].tolist()]
        reads = [
            (self.start + o + first * block, length * block)
            for o in outer
            for first, length in runs
        ]
        return self._read(reads, [int(i.numel()) for i in index])

    def _read(self, reads: list[tuple[int, int]], shape: list[int]) -> torch.Tensor:
        """Read the byte ranges ``(file offset, length)`` one after another into a new tensor."""
        out = torch.empty(shape, dtype=self.dtype)
        nbytes = out.numel() * self.dtype.itemsize
        view = memoryview((ctypes.c_ubyte * nbytes).from_address(out.data_ptr())).cast("B")
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise ModelCheckpointError(
                f"The checkpoint file {self.path} could not be read ({e.strerror or e}). Check "
                "that it still exists and that you may read it.",
                path=self.path,
            ) from e
        at = 0
        try:
            for offset, length in reads:
                got = 0
                while got < length:
                    n = os.preadv(fd, [view[at + got : at + length]], offset + got)
                    if n <= 0:
                        raise ModelCheckpointError(
                            f"The safetensors file {self.path} ended inside the tensor "
                            f"'{self.name}'. Download or save it again.",
                            path=self.path,
                        )
                    got += n
                at += length
        finally:
            os.close(fd)
        if self.log is not None:
            self.log.add(self.name, nbytes)
        return out


@dataclass
class MemoryTensor:
    """A tensor already in memory (from a pickle, or computed by an op that needs all of it)."""

    tensor: torch.Tensor
    name: str = ""

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    def read_box(self, index: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.tensor
        for d, i in enumerate(index):
            if not _is_full(i, out.shape[d]):
                out = out.index_select(d, i)
        return out.contiguous()


class LazyTensor(abc.ABC):
    """A tensor whose data is read only by :meth:`read`, and then only the selected part."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @abc.abstractmethod
    def select_indices(self, dim: int, index: torch.Tensor) -> LazyTensor:
        """The elements at ``index`` (int64, 1-D) along ``dim``, like ``index_select``."""

    @abc.abstractmethod
    def transpose(self, dim0: int, dim1: int) -> LazyTensor:
        """Swap two dimensions."""

    @abc.abstractmethod
    def read(self) -> torch.Tensor:
        """Read the selected elements into a fresh contiguous tensor."""

    def narrow(self, dim: int, start: int, length: int) -> LazyTensor:
        """Elements ``start`` .. ``start + length`` along ``dim``, like ``Tensor.narrow``."""
        dim = dim % self.ndim
        if start < 0 or length < 0 or start + length > self.shape[dim]:
            raise IndexError(
                f"narrow({dim}, {start}, {length}) is out of range for the shape {self.shape}."
            )
        return self.select_indices(dim, torch.arange(start, start + length))

    def numel(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class StoredTensor(LazyTensor):
    """Some elements of one stored tensor: an index along each stored dimension, the stored
    dimensions in the order ``perm`` (a transpose only reorders them)."""

    def __init__(
        self,
        source: TensorSource,
        index: Sequence[torch.Tensor] | None = None,
        perm: Sequence[int] | None = None,
    ) -> None:
        self.source = source
        self.index = list(index) if index is not None else [torch.arange(d) for d in source.shape]
        self.perm = list(perm) if perm is not None else list(range(len(source.shape)))
        self.dtype = source.dtype
        self.shape = tuple(int(self.index[p].numel()) for p in self.perm)

    def select_indices(self, dim: int, index: torch.Tensor) -> StoredTensor:
        dim = dim % self.ndim
        stored = self.perm[dim]
        new = list(self.index)
        new[stored] = self.index[stored][index]
        return StoredTensor(self.source, new, self.perm)

    def transpose(self, dim0: int, dim1: int) -> StoredTensor:
        perm = list(self.perm)
        dim0, dim1 = dim0 % self.ndim, dim1 % self.ndim
        perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
        return StoredTensor(self.source, self.index, perm)

    def read(self) -> torch.Tensor:
        out = self.source.read_box(self.index)
        if self.perm != sorted(self.perm):
            out = out.permute(self.perm).contiguous()
        return out


class _Cat(LazyTensor):
    def __init__(self, parts: Sequence[LazyTensor], dim: int) -> None:
        self.parts = list(parts)
        first = self.parts[0]
        self.dim = dim % first.ndim
        for p in self.parts[1:]:
            rest = [s for i, s in enumerate(p.shape) if i != self.dim]
            if p.dtype != first.dtype or rest != [
                s for i, s in enumerate(first.shape) if i != self.dim
            ]:
                raise ValueError(
                    f"Cannot join tensors of shapes {[q.shape for q in self.parts]} and dtypes "
                    f"{sorted({str(q.dtype) for q in self.parts})} along dimension {self.dim}."
                )
        shape = list(first.shape)
        shape[self.dim] = sum(p.shape[self.dim] for p in self.parts)
        self.shape = tuple(shape)
        self.dtype = first.dtype

    def select_indices(self, dim: int, index: torch.Tensor) -> LazyTensor:
        dim = dim % self.ndim
        if dim != self.dim:
            return _Cat([p.select_indices(dim, index) for p in self.parts], self.dim)
        if index.numel() == 0:
            return self.parts[0].select_indices(dim, index)
        bounds = torch.tensor([0] + [p.shape[dim] for p in self.parts]).cumsum(0)
        which = torch.bucketize(index, bounds[1:], right=True).tolist()
        pieces: list[LazyTensor] = []
        start = 0
        for end in range(1, len(which) + 1):
            if end == len(which) or which[end] != which[start]:
                part = which[start]
                pieces.append(self.parts[part].select_indices(dim, index[start:end] - bounds[part]))
                start = end
        return pieces[0] if len(pieces) == 1 else _Cat(pieces, dim)

    def transpose(self, dim0: int, dim1: int) -> LazyTensor:
        dim0, dim1 = dim0 % self.ndim, dim1 % self.ndim
        swapped = {dim0: dim1, dim1: dim0}.get(self.dim, self.dim)
        return _Cat([p.transpose(dim0, dim1) for p in self.parts], swapped)

    def read(self) -> torch.Tensor:
        return torch.cat([p.read() for p in self.parts], self.dim)


class _Stack(LazyTensor):
    def __init__(self, parts: Sequence[LazyTensor], dim: int) -> None:
        self.parts = list(parts)
        first = self.parts[0]
        if any(p.shape != first.shape or p.dtype != first.dtype for p in self.parts):
            raise ValueError(
                f"Cannot stack tensors of shapes {sorted({p.shape for p in self.parts})}."
            )
        self.dim = dim % (first.ndim + 1)
        shape = list(first.shape)
        shape.insert(self.dim, len(self.parts))
        self.shape = tuple(shape)
        self.dtype = first.dtype

    def select_indices(self, dim: int, index: torch.Tensor) -> LazyTensor:
        dim = dim % self.ndim
        if dim == self.dim:
            return _Stack([self.parts[int(i)] for i in index], self.dim)
        inner = dim - (dim > self.dim)
        return _Stack([p.select_indices(inner, index) for p in self.parts], self.dim)

    def transpose(self, dim0: int, dim1: int) -> LazyTensor:
        dim0, dim1 = dim0 % self.ndim, dim1 % self.ndim
        if self.dim in (dim0, dim1):  # rare: read the parts now and keep the result in memory
            return StoredTensor(MemoryTensor(self.read())).transpose(dim0, dim1)
        inner0, inner1 = dim0 - (dim0 > self.dim), dim1 - (dim1 > self.dim)
        return _Stack([p.transpose(inner0, inner1) for p in self.parts], self.dim)

    def read(self) -> torch.Tensor:
        return torch.stack([p.read() for p in self.parts], self.dim)


MaybeLazy = torch.Tensor | LazyTensor
"""A tensor, or on a lazy import a :class:`LazyTensor` not read yet."""


def lazy_cat(parts: Sequence[LazyTensor], dim: int) -> LazyTensor:
    """Join ``parts`` along ``dim`` without reading them; ``ValueError`` if they do not fit."""
    return parts[0] if len(parts) == 1 else _Cat(parts, dim)


def lazy_stack(parts: Sequence[LazyTensor], dim: int) -> LazyTensor:
    """Stack ``parts`` along a new ``dim`` without reading them; ``ValueError`` if shapes differ."""
    return _Stack(parts, dim)


def read_all(tensors: Sequence[torch.Tensor | LazyTensor]) -> list[torch.Tensor]:
    """Read every lazy tensor of ``tensors`` whole; real tensors pass through."""
    return [t.read() if isinstance(t, LazyTensor) else t for t in tensors]
