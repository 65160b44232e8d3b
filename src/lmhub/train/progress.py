"""Training progress on stderr: a rich bar on a terminal, one plain line per log otherwise."""

from __future__ import annotations

from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["TrainProgress"]


_SHOWN = ("loss", "lr", "grad_norm", "tokens_per_s", "perplexity", "exact_match")


def _fmt(row: dict[str, Any]) -> str:
    """The row's numbers worth showing; evaluation rows' ``<split>/<loader>/<metric>`` keys are
    shown as ``<loader>/<metric>``."""
    parts = []
    for key, value in row.items():
        name = key.rsplit("/", 1)[-1]
        if name in _SHOWN and isinstance(value, float):
            label = key.split("/", 1)[-1] if "/" in key else key
            parts.append((_SHOWN.index(name), f"{label} {value:.4g}"))
    return "  ".join(text for _, text in sorted(parts, key=lambda p: p[0]))


class TrainProgress:
    """Shows the step, the last loss, lr and tokens/s, and the time left."""

    def __init__(
        self,
        total_steps: int,
        *,
        mode: Literal["auto", "bar", "plain", "none"] = "auto",
        console: Console | None = None,
    ) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        if mode == "auto":
            mode = "bar" if self.console.is_terminal else "plain"
        self.mode = mode
        self.total = total_steps
        self._bar: Progress | None = None
        if mode == "bar":
            self._bar = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._bar.add_task("train", total=total_steps, info="")

    def start(self, step: int) -> None:
        """Begin showing progress from ``step`` (non-zero when resuming)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step)
            self._bar.start()

    def update(self, step: int, row: dict[str, Any] | None = None) -> None:
        """Advance to ``step``; ``row`` (a logged metrics row) updates the numbers shown."""
        if self._bar is not None:
            info = _fmt(row) if row is not None else None
            fields = {"info": info} if info is not None else {}
            self._bar.update(self._task, completed=step, **fields)
        elif self.mode == "plain" and row is not None:
            split = row.get("split")
            label = f"{split} " if split else ""
            self.console.print(f"{label}step {step}/{self.total}  {_fmt(row)}")

    def print(self, text: str) -> None:
        """Print a message above the bar (or as a line)."""
        if self.mode != "none":
            self.console.print(text)

    def stop(self) -> None:
        """Stop the bar (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
