"""Train the encoder-decoder families on synthetic 8-digit reversal with ``lmhub train``'s own
pipeline (``lm_type=seq2seq``): steps and CPU seconds until greedy exact match on held-out
examples reaches the target.

Each run writes ``lmhub data synth reverse``-style JSONL (20,000 training and 200 validation
examples), trains a 2 + 2-layer ``t5_tiny`` / ``transformer_tiny`` over the byte tokenizer and
evaluates greedy generation every ``--eval-every`` steps.

    python benchmarks/seq2seq_reverse.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from _common import print_table  # type: ignore[import-not-found]
from lmhub.config import apply_overrides
from lmhub.data.synth import write_synth_jsonl
from lmhub.train.config import TrainConfig
from lmhub.train.run import build_trainer
from lmhub.train.sinks import METRICS_FILE

RUNS: dict[str, dict[str, Any]] = {
    # family -> (model overrides, optimiser settings): found by a short sweep on this task.
    "transformer": {"lr": 3e-3, "steps": 400},
    "t5": {"lr": 1e-3, "steps": 1000},
}
SHAPE = {"num_layers": 2, "num_decoder_layers": 2, "dropout_p": 0.0}


def config_for(family: str, work: Path, eval_every: int) -> TrainConfig:
    run = RUNS[family]
    return apply_overrides(
        TrainConfig(),
        {
            "model": f"{family}_tiny",
            "model_config": SHAPE,
            "tokenizer": "byte",
            "lm_type": "seq2seq",
            "data": {
                "train": str(work / "train.jsonl"),
                "valid": str(work / "valid.jsonl"),
                "add_bos": True,  # an anchor for T5's relative positions
                "cache_dir": str(work / "tokens"),
            },
            "seq_len": 16,
            "batch_size": 64,
            "max_steps": run["steps"],
            "optimizer": {"lr": run["lr"], "weight_decay": 0.0, "grad_clip": 1.0},
            "lr_schedule": {"kind": "cosine", "warmup_steps": 50, "min_lr_ratio": 0.05},
            "eval": {"every_steps": eval_every, "max_new_tokens": 12},
            "log": {"progress": "none", "every_steps": 100},
            "checkpoint": {"every_steps": 0, "register_cards": False},
            "output_dir": str(work / f"run_{family}"),
            "resume": "never",
        },
    )


def train(family: str, work: Path, eval_every: int, target: float) -> dict[str, Any]:
    trainer, _ = build_trainer(config_for(family, work, eval_every))
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.fit()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rows = [json.loads(line) for line in (work / f"run_{family}" / METRICS_FILE).open()]
    evals = [r for r in rows if "exact_match" in r]
    first = next((r for r in evals if r["exact_match"] >= target), None)
    params = sum(p.numel() for p in trainer.model.parameters())
    return {
        "family": family,
        "params": f"{params / 1e6:.2f}M",
        "steps": RUNS[family]["steps"],
        "wall_s": round(seconds),
        "cpu_s": round(cpu_seconds),
        "first_step_at_target": first["step"] if first else "never",
        "final_exact_match": evals[-1]["exact_match"],
        "final_token_accuracy": round(evals[-1]["token_accuracy"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--families", nargs="+", default=list(RUNS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_synth_jsonl(work / "train.jsonl", "reverse", 20_000, digits=8, seed=0)
        write_synth_jsonl(work / "valid.jsonl", "reverse", 200, digits=8, seed=1)
        rows = [train(f, work, args.eval_every, args.target) for f in args.families]
    cpu = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    print(f"{cpu}, {args.threads} thread(s), torch {torch.__version__}")
    print_table(list(rows[0]), [list(r.values()) for r in rows])


if __name__ == "__main__":
    main()
