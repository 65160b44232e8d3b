"""``lmhub checkpoint consolidate``: turn a sharded training checkpoint into one HF directory.

Example::

    lmhub checkpoint consolidate tiny@step_400 out/tiny-400     # a run's card
    lmhub checkpoint consolidate runs/tiny/checkpoints/step_400 out/tiny-400
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)

checkpoint_app = typer.Typer(
    name="checkpoint",
    help="Work with training checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@checkpoint_app.command()
def consolidate(
    checkpoint: Annotated[
        str, typer.Argument(help="A sharded checkpoint: RUN@step_N, or its step_N directory.")
    ],
    out: Annotated[Path, typer.Argument(help="The Hugging Face directory to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Gather the shards of CHECKPOINT (any world size) into one model and export it to OUT."""
    from lmhub.train.sharded import consolidate_checkpoint

    consolidate_checkpoint(checkpoint, out, overwrite=overwrite)
    console.print(f"Wrote {out}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``checkpoint`` command group to ``app``."""
    app.add_typer(checkpoint_app, name="checkpoint")
