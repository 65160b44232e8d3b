"""Load-time benchmark: lmhub.load_model against transformers' from_pretrained (not a test).

A ~0.6B-parameter bf16 model (model_dim 1536, 20 layers, ffn 4096, 24 heads, 8 KV heads,
vocab 32000) of any family (``--family``, default llama; see ``benchmarks/_models.py``) or a
published preset as it is (``--arch``) is saved once by transformers with
max_shard_size="500MB". Then, in fresh processes, alternating, each library loads it in bf16; we
record the load call's wall time and the process's peak RSS (VmHWM), plus the RSS growth over the
state right after imports.

    python benchmarks/load.py [--rounds 5] [--moe | --family qwen2 | --arch qwen3_0_6b] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_table, run_child
from _models import add_model_args, bench_config, describe, save_hf_checkpoint
from lmhub.nn.decode_weights import cpu_model

SHAPE = {
    "model_dim": 1536,
    "num_layers": 20,
    "ffn_inner_dim": 4096,
    "num_heads": 24,
    "num_kv_heads": 8,
    "vocab_size": 32000,
    "max_seq_len": 4096,
}
"""The benchmark size of ``--family`` (lmhub config fields)."""

MOE_SHAPE = {
    "model_dim": 1024,
    "num_layers": 12,
    "num_heads": 16,
    "num_kv_heads": 8,
    "ffn_inner_dim": 3072,
    "vocab_size": 32000,
    "max_seq_len": 4096,
}
"""``--moe``: a ~1.0B-parameter Mixtral of 8 experts, top 2 (transformers saves one tensor per
expert; lmhub stacks each layer's experts as they stream in, a copy, so its peak RSS is one copy
of the weights rather than mmap's near zero)."""

CHILD = r"""
import json, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
import torch
{imports}
torch.set_num_threads(2)
base = rss("VmRSS")
start = time.perf_counter()
model = {load}
elapsed = time.perf_counter() - start
assert next(model.parameters()).dtype == torch.bfloat16
with torch.no_grad():  # first logits: touches every weight page once
    out = model(torch.arange(8)[None])
first = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "first_logits": first, "peak_mb": rss("VmHWM"),
                  "growth_mb": rss("VmHWM") - base}}))
"""

LOADERS = {
    "lmhub": (
        "import lmhub",
        "lmhub.load_model({dir!r}, dtype=torch.bfloat16, progress=False{extra})",
    ),
    "transformers": (
        "from transformers import AutoModelForCausalLM",
        "AutoModelForCausalLM.from_pretrained({dir!r}, dtype=torch.bfloat16)",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="default bench-out/NAME-load")
    add_model_args(parser)
    args = parser.parse_args()
    family, config = bench_config(
        args.family, args.arch, MOE_SHAPE if args.moe else SHAPE, moe=args.moe
    )
    directory = (
        args.dir or Path("bench-out") / f"{args.arch or ('moe' if args.moe else args.family)}-load"
    )
    save_hf_checkpoint(family, config, directory, dtype=torch.bfloat16, max_shard_size="500MB")
    variants = {
        "transformers": LOADERS["transformers"],
        "lmhub": (LOADERS["lmhub"][0], LOADERS["lmhub"][1].replace("{extra}", "")),
        "lmhub mmap=False": (
            LOADERS["lmhub"][0],
            LOADERS["lmhub"][1].replace("{extra}", ", mmap=False"),
        ),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (imports, load) in variants.items():  # alternate to share page-cache state
            code = CHILD.format(imports=imports, load=load.format(dir=str(directory)))
            results[name].append(run_child(code))
    ref = median([r["seconds"] for r in results["transformers"]])
    ref_peak = median([r["peak_mb"] for r in results["transformers"]])
    ref_first = median([r["first_logits"] for r in results["transformers"]])
    rows = []
    for name, runs in results.items():
        t = median([r["seconds"] for r in runs])
        peak = median([r["peak_mb"] for r in runs])
        growth = median([r["growth_mb"] for r in runs])
        first = median([r["first_logits"] for r in runs])
        rows.append(
            [
                name,
                f"{t * 1000:.0f} ms",
                f"{t / ref:.3f}x",
                f"{first * 1000:.0f} ms",
                f"{first / ref_first:.2f}x",
                f"{peak:.0f} MB",
                f"{peak / ref_peak:.2f}x",
                f"{growth:.0f} MB",
            ]
        )
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; {describe(family, config, args.arch)}")
    print(f"median of {args.rounds} fresh-process loads, warm page cache")
    print_table(
        [
            "loader",
            "load",
            "ratio",
            "load + first logits",
            "ratio",
            "peak RSS",
            "ratio",
            "RSS growth",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
