"""``lmhub train``: train (or fine-tune) a model from a YAML config and dotted overrides.

Example::

    lmhub train --list-examples
    lmhub train arlm_tiny data.train=corpus.txt max_steps=500 output_dir=runs/tiny
    lmhub train my.yaml model=path/to/hf_llama optimizer.lr=2e-5   # fine-tune a checkpoint
    lmhub generate tiny@last --prompt "Once upon a time"
    lmhub train my.yaml --nproc-per-node 4 parallel.tp_size=2          # torchrun: FSDP x TP
    torchrun --nproc-per-node 4 -m lmhub train my.yaml parallel.tp_size=2   # the same
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


def train(
    config: Annotated[
        str | None, typer.Argument(help="A YAML config file, or the name of a shipped example.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE overrides of config fields, e.g. optimizer.lr=1e-3."),
    ] = None,
    list_examples: Annotated[
        bool, typer.Option("--list-examples", help="List the shipped example configs and exit.")
    ] = False,
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            "--nproc-per-node",
            help="Launch this many processes on this machine with torchrun (--standalone); the "
            "config's parallel: section says how they split the work.",
        ),
    ] = None,
) -> None:
    """Train the model CONFIG describes; resumes from its output directory's last checkpoint."""
    from lmhub.config import to_yaml
    from lmhub.errors import ConfigError
    from lmhub.train import config_files

    if list_examples:
        for name in config_files.list_examples():
            console.print(f"{name}  ({config_files.example_path(name)})", markup=False)
        return
    if config is None:
        raise ConfigError(
            "Pass a CONFIG (a YAML file or an example name); `lmhub train --list-examples` "
            "lists the examples."
        )
    resolved = config_files.load_train_config(config, overrides or [])
    if nproc_per_node is not None and "WORLD_SIZE" not in os.environ:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = [*torchrun, f"--nproc-per-node={nproc_per_node}", "-m", "lmhub", "train"]
        command += [config, *(overrides or [])]
        raise typer.Exit(subprocess.run(command, check=False).returncode)
    import torch.distributed as dist

    from lmhub.train.run import train as run_training

    main = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for all
    if main:
        console.print("[bold]Training config[/]")
        console.print(to_yaml(resolved), markup=False)
    try:
        final = run_training(resolved)
    finally:
        if dist.is_initialized():  # set up by the run (under torchrun): release it cleanly
            dist.destroy_process_group()
    if main:
        console.print(f"Done: the trained model is in {final}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``lmhub train`` to ``app``."""
    app.command()(train)
