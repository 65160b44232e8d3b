"""Peak-memory probes: CUDA's allocator statistics, or the process's peak resident set size."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
import sys
from pathlib import Path

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on ``device`` (on CPU: the process's peak RSS, where the
    kernel allows resetting it; otherwise the peak stays the process-lifetime one)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Linux: writing 5 resets VmHWM (the peak RSS) to the current RSS.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_bytes(device: torch.device) -> int:
    """Return the peak memory since :func:`reset_peak_memory`: CUDA bytes allocated by tensors,
    or on CPU the process's peak resident set size.

    Example:
        >>> reset_peak_memory(torch.device("cpu")); x = torch.ones(2**26)
        >>> peak_memory_bytes(torch.device("cpu")) > 2**28
        True
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def describe_peak(device: torch.device) -> str:
    """Say what :func:`peak_memory_bytes` measures on ``device``."""
    return "CUDA max allocated" if device.type == "cuda" else "peak RSS of the process"


M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (``malloc.h``)."""


def set_malloc_mmap_threshold(mib: float) -> bool:
    """Make glibc serve allocations of ``mib`` MiB or more from their own memory maps.

    Setting the threshold also turns off glibc's dynamic threshold, which otherwise climbs to
    32 MiB once a large block is freed, after which freed activations stay in a fragmenting
    heap. Returns whether the setting took (False off glibc, e.g. macOS or musl).

    Example:
        >>> set_malloc_mmap_threshold(1.0)  # doctest: +SKIP
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(mib * 2**20)))
