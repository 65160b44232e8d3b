"""Metric sinks: where the trainer's metric rows go (JSON lines, and TensorBoard on request).

Every row is a flat dict with a ``step``; evaluation rows carry ``split`` and ``loader``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Protocol

from lmhub.errors import OptionalDependencyError

__all__ = ["JsonlSink", "MetricSink", "TensorBoardSink", "truncate_metrics"]

METRICS_FILE = "metrics.jsonl"


class MetricSink(Protocol):
    """Receives metric rows."""

    def write(self, row: dict[str, Any]) -> None:
        """Record one row."""
        ...

    def close(self) -> None:
        """Flush and release what the sink holds."""
        ...


def _plain(value: Any) -> Any:
    # JSON has no NaN or infinity: write them as null (the trainer stops on them anyway).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlSink:
    """Appends each row as one JSON line to ``OUTPUT_DIR/metrics.jsonl``, flushed at once so a
    killed run keeps every row it logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps({k: _plain(v) for k, v in row.items()}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop the rows of steps after ``last_step`` (logged by a run that was then interrupted),
    so a resumed run's file reads as if the run had never stopped."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= last_step
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


class TensorBoardSink:
    """Writes each number of a row as a TensorBoard scalar, tagged ``split/name`` (evaluation
    metrics keep their ``<split>/<loader>/<metric>`` keys)."""

    def __init__(self, directory: Path) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise OptionalDependencyError(
                "tensorboard", "Writing TensorBoard logs (log.tensorboard=true)", "tensorboard"
            )
        writer_cls = importlib.import_module("torch.utils.tensorboard").SummaryWriter
        self._writer = writer_cls(log_dir=str(directory))

    def write(self, row: dict[str, Any]) -> None:
        split = row.get("split", "train")
        for name, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name != "step":
                tag = name if "/" in name else f"{split}/{name}"  # eval keys carry theirs
                self._writer.add_scalar(tag, value, row["step"])

    def close(self) -> None:
        self._writer.close()
