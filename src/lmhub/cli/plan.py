"""``lmhub plan``: the memory one rank needs to train an architecture on a given layout.

Example::

    lmhub plan llama3_8b --dp 8 --tp 2 --precision bf16-mixed --batch-size 16 --seq-len 4096
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def plan(
    arch: Annotated[str, typer.Argument(help="An architecture preset, e.g. llama3_8b.")],
    dp: Annotated[int, typer.Option("--dp", help="FSDP2 shards (data-parallel ranks).")] = 1,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel ranks.")] = 1,
    precision: Annotated[
        str, typer.Option(help="fp32, bf16-mixed (fp32 weights, bf16 compute) or bf16.")
    ] = "bf16-mixed",
    batch_size: Annotated[int, typer.Option(help="Rows of the whole micro-batch.")] = 8,
    seq_len: Annotated[int, typer.Option(help="Tokens per row.")] = 2048,
) -> None:
    """Print parameters, gradients, AdamW state and an activation estimate per rank."""
    from lmhub.errors import ConfigError
    from lmhub.train.memory_plan import plan_memory

    if precision not in ("fp32", "bf16-mixed", "bf16"):
        raise ConfigError(
            f"--precision is {precision!r}; use fp32, bf16-mixed or bf16.",
            field="precision",
            value=precision,
        )
    for name, value in (("--dp", dp), ("--tp", tp), ("--batch-size", batch_size)):
        if value < 1:
            raise ConfigError(f"{name} is {value}; it must be at least 1.", field=name, value=value)
    result = plan_memory(
        arch,
        dp=dp,
        tp=tp,
        precision=precision,
        batch_size=batch_size,
        seq_len=seq_len,  # type: ignore[arg-type]
    )
    table = Table(
        title=f"{arch}: {result.num_params / 1e6:,.1f}M parameters, dp={dp} x tp={tp}, "
        f"{precision}, batch {batch_size} x {seq_len} tokens (per rank)"
    )
    table.add_column("what")
    table.add_column("per rank", justify="right")
    table.add_row("parameters", f"{result.rank_params / 1e6:,.1f}M = {_gib(result.param_bytes)}")
    table.add_row("gradients", _gib(result.grad_bytes))
    table.add_row("AdamW state", _gib(result.optimizer_bytes))
    table.add_row(
        f"activations ({-(-batch_size // dp)} rows, estimate)", _gib(result.activation_bytes)
    )
    table.add_row("FSDP gathered layers", _gib(result.gathered_bytes))
    table.add_row("total", _gib(result.total_bytes))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``lmhub plan`` to ``app``."""
    app.command()(plan)
