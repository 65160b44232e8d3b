"""The ``lmhub`` command. User errors print one line and exit 2, with no traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from lmhub.cli import catalog, demo, generate, model, model_test
from lmhub.errors import LmhubError

app = typer.Typer(
    name="lmhub",
    help="List, inspect, build and load language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog.register(app)
demo.register(app)
generate.register(app)
model_test.register(model.model_app)
model.register(app)

USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user error)."""
    try:
        app(args=argv, prog_name="lmhub")
    except LmhubError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]error:[/] {exc}", markup=True
        )
        return USER_ERROR
    except SystemExit as exc:  # click ends every run with SystemExit; usage errors give 2
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
