"""Small synthetic seq2seq tasks over digits, for demos, tests and LM-type comparisons.

Each example is ``{"prompt": ..., "target": ...}`` (the seq2seq JSONL format of
:mod:`lmhub.data.sources`):

- ``reverse``: the digits backwards (``"0412" -> "2140"``);
- ``sort``: the digits in ascending order (``"0412" -> "0124"``);
- ``add``: two numbers and their sum (``"37+405" -> "442"``), no leading zeros.

With ``variable_length`` each example draws its length uniformly from ``1..digits``; otherwise
every example has exactly ``digits`` digits (leading zeros allowed for reverse and sort). The
same ``seed`` always gives the same examples.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from lmhub.checkpoint.writers import atomic_write_text
from lmhub.errors import ConfigError

__all__ = ["SYNTH_TASKS", "synth_examples", "write_synth_jsonl"]


def _digits(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(length))


def _number(rng: random.Random, length: int) -> int:
    """A number with exactly ``length`` digits (no leading zero unless it is 0 itself)."""
    return rng.randint(0 if length == 1 else 10 ** (length - 1), 10**length - 1)


def _reverse(rng: random.Random, length: int) -> tuple[str, str]:
    text = _digits(rng, length)
    return text, text[::-1]


def _sort(rng: random.Random, length: int) -> tuple[str, str]:
    text = _digits(rng, length)
    return text, "".join(sorted(text))


def _add(rng: random.Random, length: int) -> tuple[str, str]:
    a = _number(rng, length)
    b = _number(rng, rng.randint(1, length))
    return f"{a}+{b}", str(a + b)


SYNTH_TASKS: dict[str, Callable[[random.Random, int], tuple[str, str]]] = {
    "reverse": _reverse,
    "sort": _sort,
    "add": _add,
}
"""Task name -> a function of (rng, length) giving ``(prompt, target)``."""


def synth_examples(
    task: str, n: int, *, digits: int = 8, variable_length: bool = False, seed: int = 0
) -> list[dict[str, str]]:
    """Return ``n`` examples of ``task`` (see the module docstring).

    Example:
        >>> synth_examples("reverse", 1, digits=4, seed=1)
        [{'prompt': '9721', 'target': '1279'}]
    """
    if task not in SYNTH_TASKS:
        raise ConfigError(
            f"Unknown synthetic task '{task}'; use one of {', '.join(sorted(SYNTH_TASKS))}.",
            field="task",
        )
    if n < 1:
        raise ConfigError(f"The number of examples must be at least 1, not {n}.", field="n")
    if digits < 1:
        raise ConfigError(f"digits must be at least 1, not {digits}.", field="digits")
    rng = random.Random(f"{task}:{digits}:{variable_length}:{seed}")
    make = SYNTH_TASKS[task]
    examples = []
    for _ in range(n):
        length = rng.randint(1, digits) if variable_length else digits
        prompt, target = make(rng, length)
        examples.append({"prompt": prompt, "target": target})
    return examples


def write_synth_jsonl(
    path: str | Path,
    task: str,
    n: int,
    *,
    digits: int = 8,
    variable_length: bool = False,
    seed: int = 0,
) -> Path:
    """Write :func:`synth_examples` to ``path`` as JSON lines (atomically); return the path."""
    examples = synth_examples(task, n, digits=digits, variable_length=variable_length, seed=seed)
    path = Path(path)
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in examples))
    return path
