"""``lmhub demo``: an offline tour on the embedded ``llama_tiny`` preset."""

from __future__ import annotations

import time
from typing import Annotated

import torch
import typer


def demo(
    prompt: Annotated[str, typer.Option(help="Text whose UTF-8 bytes are the input ids.")] = (
        "Hello, lmhub!"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Build llama_tiny with random weights, run it on a prompt's byte ids, list the families."""
    from lmhub.cli.catalog import console, families
    from lmhub.models.hub import get_model_hub

    torch.manual_seed(seed)
    hub = get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    start = time.perf_counter()
    model = hub.create_new_model(config).eval()
    built = time.perf_counter() - start
    ids = torch.tensor([list(prompt.encode("utf-8"))])
    with torch.no_grad():
        logits = model(ids)
    params = sum(p.numel() for p in model.parameters())
    console().print(f"[bold]llama_tiny[/]: {params:,} parameters, built in {built * 1000:.0f} ms")
    console().print(f"prompt {prompt!r} -> {ids.shape[1]} byte ids -> logits {tuple(logits.shape)}")
    top = logits[0, -1].softmax(-1).topk(5)
    pairs = ", ".join(f"{i}:{p:.4f}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
    console().print(f"next-token top-5 (random weights): {pairs}")
    families()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
