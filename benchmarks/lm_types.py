"""LM types side by side on the synthetic digit tasks: steps, time and exact match per type x task.

Every row trains the same backbone (a ~0.8M-parameter Llama, bidirectional or causal as the
type says) on 8-digit ``reverse`` and ``sort`` examples from :mod:`lmhub.data.synth`, batch 128,
through ``lmhub.train`` (the one trainer), then scores exact match of the type's predictor on
512 held-out examples (the run's ``test/answers`` loader). The times are the whole run's wall
and CPU time on ``--threads`` CPU threads (the issue's bar: exact match >= 0.95 within a few
minutes on one core).

One row function per LM type (``ROWS``) gives that type's config; add a type by adding one.

    python benchmarks/lm_types.py                      # every type, both tasks
    python benchmarks/lm_types.py --types mlm --tasks reverse --steps 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from _common import print_table
from lmhub.config import apply_overrides
from lmhub.data.synth import write_synth_jsonl
from lmhub.nn.decode_weights import cpu_model
from lmhub.train.config import TrainConfig
from lmhub.train.run import train
from lmhub.train.sinks import METRICS_FILE

BACKBONE = {"model_dim": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 4,
            "ffn_inner_dim": 344}  # fmt: skip
"""About 0.8M parameters over the byte vocabulary."""

Row = Callable[[str], dict[str, Any]]
"""task -> the type's config overrides (``lm_type``, ``lm_options``, ``max_steps``, ...)."""


def arlm_row(task: str) -> dict[str, Any]:
    """Autoregressive: greedy decoding of the 8 digits and EOS."""
    return {"lm_type": "arlm", "max_steps": 500}


def mlm_row(task: str) -> dict[str, Any]:
    """Masked LM: per-row uniform masking of the target, unmasking in 9 steps (one a step)."""
    return {
        "lm_type": "mlm",
        "max_steps": 500,
        "lm_options": {"mask_token_ratio": 1.0, "random_token_ratio": 0.0, "predict_steps": 9},
    }


def mdlm_row(task: str) -> dict[str, Any]:
    """Masked diffusion: adaLN-zero time conditioning, targets padded to 9, 16 reverse steps;
    a BOS anchor (bidirectional RoPE has no absolute positions). Reversal: 500 steps at a
    constant rate; sorting (0.775 so) 1000 steps, cosine."""
    return {
        "lm_type": "mdlm",
        "max_steps": 500 if task == "reverse" else 1000,
        "data.add_bos": True,
        "lr_schedule.kind": "constant" if task == "reverse" else "cosine",
        "lm_options": {"time_conditioning": True, "cond_dim": 64, "target_length": 9,
                       "predict_steps": 16},
    }  # fmt: skip


def ilm_row(task: str) -> dict[str, Any]:
    """Insertion LM: rows CLS, prompt, BOS, target (the segment embedding marks the open part);
    one (gap, token) insertion per step until the stop head says done. The loss is averaged over
    every prediction (``loss_normalization``); lr 1e-3 (3e-3 learns reversal more slowly).
    Reversal gets 1000 steps (0.83 after 500)."""
    return {
        "lm_type": "ilm",
        "max_steps": 1000 if task == "reverse" else 500,
        "optimizer.lr": 1e-3,
    }


HEADERS = ["type", "task", "steps", "wall time", "CPU time", "exact match"]
"""The table's columns: CPU time is the process's (what a single-threaded run takes on an idle
core, whatever else the machine runs)."""

ROWS: dict[str, Row] = {"arlm": arlm_row, "mlm": mlm_row, "ilm": ilm_row, "mdlm": mdlm_row}
"""LM type -> its row function."""


def run_row(lm_type: str, task: str, *, steps: int | None, device: str, work: Path) -> list[Any]:
    """Train one type on one task; return the table row."""
    data = work / task
    data.mkdir(parents=True, exist_ok=True)
    train_file = write_synth_jsonl(data / "train.jsonl", task, 20_000, seed=0)
    test_file = write_synth_jsonl(data / "test.jsonl", task, 512, seed=1)
    overrides = ROWS[lm_type](task)
    if steps is not None:
        overrides["max_steps"] = steps
    base = {
        "model": "llama_tiny",
        "model_config": BACKBONE,
        "tokenizer": "byte",
        "data": {"train": str(train_file), "test": str(test_file), "cache_dir": str(work / "tok")},
        "seq_len": 32,
        "batch_size": 128,
        "optimizer": {"lr": 3e-3, "weight_decay": 0.0},
        "lr_schedule": {"kind": "cosine", "warmup_steps": 20},
        "eval": {"batch_size": 256, "max_new_tokens": 12,
                 "loaders": [{"name": "answers", "kind": "prediction", "split": "test"}]},
        "log": {"every_steps": 50, "progress": "none"},
        "checkpoint": {"register_cards": False},
        "device": device,
        "output_dir": str(work / f"{lm_type}-{task}"),
    }  # fmt: skip
    config = apply_overrides(apply_overrides(TrainConfig(), base), overrides)
    start, cpu_start = time.perf_counter(), time.process_time()
    train(config)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rows = (Path(config.output_dir) / METRICS_FILE).read_text().splitlines()
    last = [json.loads(r) for r in rows if '"test"' in r][-1]
    exact = last["test/answers/exact_match"]
    return [lm_type, task, config.max_steps, f"{elapsed:.0f} s", f"{cpu:.0f} s", f"{exact:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--tasks", nargs="+", default=["reverse", "sort"])
    parser.add_argument("--steps", type=int, default=None, help="Override every row's steps.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = cpu_model() if args.device == "cpu" else torch.cuda.get_device_name()
    print(f"{where}, {args.threads} thread(s), torch {torch.__version__}")
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for lm_type in args.types:
            for task in args.tasks:
                table.append(
                    run_row(lm_type, task, steps=args.steps, device=args.device, work=Path(tmp))
                )
                print_table(HEADERS, table[-1:])
    print()
    print_table(HEADERS, table)


if __name__ == "__main__":
    main()
