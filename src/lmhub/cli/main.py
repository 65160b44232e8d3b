"""The ``lmhub`` command. User errors print one line and exit 2, with no traceback."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from lmhub.cli import catalog, data, demo, eval, generate, model, model_test, scaffold, train
from lmhub.errors import LmhubError

app = typer.Typer(
    name="lmhub",
    help="List, inspect, build and load language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog.register(app)
data.register(app)
demo.register(app)
eval.register(app)
generate.register(app)
model_test.register(model.model_app)
model.register(app)
scaffold.register(app)
train.register(app)

USER_ERROR = 2

FULL_ERRORS_ENV = "LMHUB_FULL_ERRORS"
"""Set to 1 to print errors in full (every key of a state-dict mismatch), over several lines."""


def one_line(exc: LmhubError) -> str:
    """The error as the CLI prints it: one line (the error's ``summary`` where it has one, and a
    pointer to the full text), unless ``LMHUB_FULL_ERRORS=1``."""
    text = str(exc)
    if os.environ.get(FULL_ERRORS_ENV) == "1" or "\n" not in text:
        return text
    summary = getattr(exc, "summary", None)
    short = summary if isinstance(summary, str) else text.splitlines()[0]
    return " ".join(short.split()) + f" Set {FULL_ERRORS_ENV}=1 for the full list."


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user error)."""
    try:
        app(args=argv, prog_name="lmhub")
    except LmhubError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(one_line(exc))}", markup=True
        )
        return USER_ERROR
    except SystemExit as exc:  # click ends every run with SystemExit; usage errors give 2
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
