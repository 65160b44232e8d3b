"""``lmhub demo``: train a small Llama on Shakespeare, offline, in about a minute on two cores.

It decompresses the Tiny Shakespeare text shipped in the package (the first 300,000 characters
of karpathy/char-rnn's ``data/tinyshakespeare/input.txt``; Shakespeare's text is public domain)
into a fresh run directory, builds a 2.8M-parameter Llama over bytes, prints a sample of its
random-weight gibberish, trains it with the ``demo`` example config (progress bar on a
terminal), exports the Hugging Face directory, reloads it, checks the reloaded logits, and
prints a sample from it. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from lmhub.errors import TokenizerError
from lmhub.utils import check_seed

CORPUS = "tinyshakespeare.txt.gz"


def _sample(model: Any, tokenizer: Any, prompt: str, tokens: int, seed: int) -> str:
    from lmhub.generation import generate

    ids = torch.tensor([tokenizer.encode(prompt)])
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    out = generate(
        model, ids, max_new_tokens=tokens, temperature=0.8, top_k=40, generator=generator
    )
    return prompt + tokenizer.decode(out[0, ids.shape[1] :].tolist())


def demo(
    steps: Annotated[int, typer.Option(help="Optimiser steps to train for.")] = 200,
    batch_size: Annotated[int, typer.Option(help="Rows of 128 bytes per step.")] = 16,
    output_dir: Annotated[
        Path | None, typer.Option(help="Where to save the run (default: a new temp folder).")
    ] = None,
    prompt: Annotated[str, typer.Option(help="The text the samples continue.")] = "ROMEO:\n",
    sample_tokens: Annotated[int, typer.Option(help="Bytes per sample.")] = 160,
    seed: Annotated[int, typer.Option(help="Seed of the weights, data order and samples.")] = 0,
) -> None:
    """Train a small Llama on Shakespeare offline; sample before and after; export and reload."""
    from lmhub.cli.catalog import console
    from lmhub.models.resolve import load_model
    from lmhub.train.config_files import load_train_config
    from lmhub.train.run import build_trainer, fit_and_export

    if not prompt:
        raise TokenizerError(
            "The demo prompt is empty, so there is nothing to run the model on. Pass a non-empty "
            "--prompt, or leave it out to use the default."
        )
    check_seed(seed)
    out = console()
    run = output_dir or Path(tempfile.mkdtemp(prefix="lmhub-demo-"))
    run.mkdir(parents=True, exist_ok=True)
    corpus = run / "tinyshakespeare.txt"
    packed = resources.files("lmhub.train") / "examples" / CORPUS
    corpus.write_bytes(gzip.decompress(packed.read_bytes()))
    config = load_train_config(
        "demo",
        [f"data.train={corpus}", f"output_dir={run}", f"max_steps={steps}",
         f"batch_size={batch_size}", f"seed={seed}", f"data.cache_dir={run / 'token_cache'}"],
    )  # fmt: skip
    trainer, _ = build_trainer(config)
    params = sum(p.numel() for p in trainer.model.parameters())
    out.print(
        f"[bold]A {params / 1e6:.1f}M-parameter Llama over bytes[/], trained on "
        f"{corpus.stat().st_size:,} characters of Shakespeare for {steps} steps of "
        f"{batch_size} x {config.seq_len} bytes. The run goes to {run}."
    )
    tokenizer = trainer.tokenizer
    out.print("[bold]Before training[/] (random weights):")
    out.print(_sample(trainer.model, tokenizer, prompt, sample_tokens, seed), markup=False)

    start = time.perf_counter()
    final = fit_and_export(trainer)
    elapsed = time.perf_counter() - start
    first, last = _first_last_loss(run / "metrics.jsonl")
    out.print(
        f"Trained in {elapsed:.0f} s: loss {first:.2f} -> {last:.2f} nats per byte. Exported "
        f"the Hugging Face directory {final}."
    )
    reloaded = load_model(final).eval()
    ids = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        diff = (reloaded(ids) - trainer.model.eval()(ids)).abs().max().item()
    out.print(f"Reloaded it with lmhub.load_model: max |logit diff| {diff:.1e}.")
    out.print("[bold]After training[/] (the reloaded model):")
    out.print(_sample(reloaded, tokenizer, prompt, sample_tokens, seed), markup=False)
    out.print(f"Continue it with: lmhub generate {final} --prompt 'ROMEO:' --temperature 0.8")


def _first_last_loss(metrics: Path) -> tuple[float, float]:
    import json

    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    losses = [r["loss"] for r in rows if "split" not in r]
    return losses[0], losses[-1]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
