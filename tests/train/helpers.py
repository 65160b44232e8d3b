"""Tiny training runs for the trainer tests: a 2-layer Llama of width 32 over bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmhub.config import apply_overrides
from lmhub.train.config import TrainConfig
from tests.fixtures import SHAKESPEARE

TINY_MODEL = {"model_dim": 32, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
              "ffn_inner_dim": 64}  # fmt: skip

PAIRS = [("ab=", "ba"), ("xyz=", "zyx"), ("hello=", "olleh"), ("q=", "q")]


def write_text(tmp_path: Path, chars: int = 3000) -> Path:
    path = tmp_path / "corpus.txt"
    text = SHAKESPEARE.read_text(encoding="utf-8")[:chars]
    path.write_text(text, encoding="utf-8")
    return path


def write_pairs(tmp_path: Path, pairs: list[tuple[str, str]] = PAIRS) -> Path:
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"prompt": p, "target": t}) for p, t in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, data: Path, **overrides: Any) -> TrainConfig:
    """A run of a few steps that logs every step and shows no progress."""
    base = {
        "model": "llama_tiny",
        "model_config": TINY_MODEL,
        "tokenizer": "byte",
        "data": {"train": str(data), "doc_separator": "\n\n", "cache_dir": str(tmp_path / "tok")},
        "seq_len": 32,
        "batch_size": 2,
        "max_steps": 4,
        "optimizer": {"lr": 3e-3},
        "lr_schedule": {"kind": "cosine", "warmup_steps": 1},
        "log": {"every_steps": 1, "progress": "none"},
        "output_dir": str(tmp_path / "run"),
    }
    config = apply_overrides(TrainConfig(), base)
    return apply_overrides(config, overrides)


def metric_rows(output_dir: Path, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("split") == split]
