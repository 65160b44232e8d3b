"""``lmhub eval``: run a training config's evaluation loaders on a saved checkpoint.

Example::

    lmhub eval my.yaml checkpoint=rev@last
    lmhub eval mlm_reverse data.train=train.jsonl data.test=test.jsonl checkpoint=runs/rev/final
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)

CHECKPOINT_KEY = "checkpoint="


def eval_command(
    config: Annotated[str, typer.Argument(help="A YAML config file, or a shipped example's name.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="checkpoint=RUN@last (or a checkpoint directory), and KEY=VALUE overrides."
        ),
    ] = None,
) -> None:
    """Evaluate a checkpoint on CONFIG's validation and test loaders; print one JSON row each."""
    from lmhub.errors import ConfigError
    from lmhub.train import config_files
    from lmhub.train.run import evaluate_checkpoint

    items = list(overrides or [])
    chosen = [item[len(CHECKPOINT_KEY) :] for item in items if item.startswith(CHECKPOINT_KEY)]
    if len(chosen) != 1 or not chosen[0]:
        raise ConfigError(
            "Pass the checkpoint to evaluate once, as checkpoint=RUN@last (a run's card) or "
            "checkpoint=path/to/checkpoints/step_N.",
            field="checkpoint",
        )
    rest = [item for item in items if not item.startswith(CHECKPOINT_KEY)]
    resolved = config_files.load_train_config(config, rest)
    for row in evaluate_checkpoint(resolved, chosen[0]):
        console.print(json.dumps(row), markup=False)


def register(app: typer.Typer) -> None:
    """Add ``lmhub eval`` to ``app``."""
    app.command(name="eval")(eval_command)
