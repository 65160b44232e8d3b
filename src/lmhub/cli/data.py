"""``lmhub data synth``: write a synthetic seq2seq task (reverse, sort, add) as JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lmhub.data.synth import SYNTH_TASKS, write_synth_jsonl

data_app = typer.Typer(help="Make and inspect training data.", no_args_is_help=True)


@data_app.command("synth")
def synth(
    task: Annotated[str, typer.Argument(help=f"One of: {', '.join(SYNTH_TASKS)}.")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to write.")],
    n: Annotated[int, typer.Option("--n", help="How many examples.")] = 1000,
    digits: Annotated[int, typer.Option(help="Digits per example (the most, if variable).")] = 8,
    variable_length: Annotated[
        bool, typer.Option("--variable-length", help="Draw each length from 1..digits.")
    ] = False,
    seed: Annotated[int, typer.Option(help="The same seed gives the same examples.")] = 0,
) -> None:
    """Write N prompt/target examples of TASK to --out (JSON lines, atomically)."""
    path = write_synth_jsonl(
        out, task, n, digits=digits, variable_length=variable_length, seed=seed
    )
    typer.echo(f"Wrote {n} '{task}' examples to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
