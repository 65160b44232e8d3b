"""``lmhub demo``: an offline tour on the embedded ``llama_tiny`` preset.

It builds the model with random weights, runs it on a prompt's byte ids, generates a few tokens,
saves it as a Hugging Face checkpoint and loads that back (checking the logits agree), then lists
the families. Nothing is downloaded.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from lmhub.errors import TokenizerError


def demo(
    prompt: Annotated[str, typer.Option(help="Text whose UTF-8 bytes are the input ids.")] = (
        "Hello, lmhub!"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
    new_tokens: Annotated[int, typer.Option(help="How many tokens to generate.")] = 32,
) -> None:
    """Build llama_tiny, run and generate on a prompt's byte ids, round-trip it through a
    Hugging Face checkpoint, and list the families."""
    from lmhub.cli.catalog import console, families
    from lmhub.data.tokenizers import load_tokenizer
    from lmhub.generation import generate
    from lmhub.hf.export import export
    from lmhub.models.hub import get_model_hub, load_model
    from lmhub.utils import check_seed

    if not prompt:
        raise TokenizerError(
            "The demo prompt is empty, so there is nothing to run the model on. Pass a non-empty "
            "--prompt, or leave it out to use the default."
        )
    out = console()
    torch.manual_seed(check_seed(seed))
    hub = get_model_hub("llama")
    start = time.perf_counter()
    model = hub.create_new_model(hub.get_arch_config("llama_tiny")).eval()
    built = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    out.print(f"[bold]llama_tiny[/]: {params:,} parameters, built in {built * 1000:.0f} ms")

    tokenizer = load_tokenizer("byte")
    ids = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        logits = model(ids)
    out.print(f"prompt {prompt!r} -> {ids.shape[1]} byte ids -> logits {tuple(logits.shape)}")

    start = time.perf_counter()
    tokens = generate(model, ids, max_new_tokens=new_tokens)
    rate = new_tokens / (time.perf_counter() - start)
    text = tokenizer.decode(tokens[0, ids.shape[1] :].tolist())
    out.print(f"greedy continuation ({rate:.0f} tokens/s, random weights): {text!r}")

    with tempfile.TemporaryDirectory() as tmp:
        export(model, Path(tmp) / "llama_tiny")
        reloaded = load_model(Path(tmp) / "llama_tiny").eval()
        with torch.no_grad():
            diff = (reloaded(ids) - logits).abs().max().item()
        files = sorted(p.name for p in (Path(tmp) / "llama_tiny").iterdir())
    out.print(
        f"exported as a Hugging Face checkpoint ({', '.join(files)}); "
        f"reloaded it, max |logit diff| {diff:.1e}"
    )
    families()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
