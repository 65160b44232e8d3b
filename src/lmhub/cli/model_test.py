"""``lmhub model test``: a forward/backward/optimizer smoke test of any architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False)


def model_test(
    model: Annotated[str, typer.Argument(help="An architecture, a card or a checkpoint dir.")],
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 2,
    sequence_length: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    steps: Annotated[int, typer.Option(help="Optimizer steps to run.")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd.")] = "adamw",
    dtype: Annotated[str, typer.Option(help="Parameter dtype: float32, bfloat16, ...")] = (
        "float32"
    ),
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute layer activations in backward (less memory).")
    ] = False,
    fuse_optim_with_backward: Annotated[
        bool, typer.Option(help="Step each parameter in backward and free its gradient.")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="Train on this UTF-8 text file instead of random tokens.")
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer for --data: 'byte' or a path (default: the model's own)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the weights and random tokens.")] = 0,
) -> None:
    """Run forward + backward + optimizer steps and print loss, shapes, speed and memory.

    Exits non-zero (with an error) if a loss is NaN or infinite.
    """
    from lmhub.train.model_test import ModelTestOptions, run_model_test

    options = ModelTestOptions(
        batch_size=batch_size,
        sequence_length=sequence_length,
        steps=steps,
        lr=lr,
        optimizer=optimizer,  # type: ignore[arg-type]
        dtype=dtype,
        device=device,
        gradient_checkpointing=gradient_checkpointing,
        fuse_optim_with_backward=fuse_optim_with_backward,
        data=data,
        tokenizer=tokenizer,
        seed=seed,
    )
    run_model_test(model, options, echo=lambda line: console.print(line, markup=False))


def register(model_app: typer.Typer) -> None:
    """Add ``test`` to the ``lmhub model`` command group."""
    model_app.command("test")(model_test)
