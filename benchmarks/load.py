"""Load-time benchmark: lmhub.load_model against transformers' from_pretrained (not a test).

A ~0.6B-parameter bf16 Llama (model_dim 1536, 20 layers, ffn 4096, 24 heads, 8 KV heads,
vocab 32000) is saved once by transformers with max_shard_size="500MB". Then, in fresh
processes, alternating, each library loads it in bf16; we record the load call's wall time and
the process's peak RSS (VmHWM), plus the RSS growth over the state right after imports.

``--moe`` loads a ~1.0B-parameter bf16 Mixtral-style mixture of experts instead (model_dim 1024,
12 layers, 8 experts of width 3072, top 2; vocab 32000), which transformers saves one tensor per
expert: lmhub stacks each layer's experts as they stream in (a copy, so its peak RSS is one copy
of the weights rather than mmap's near zero).

    python benchmarks/load.py [--rounds 5] [--dir bench-out/llama-0.6b] [--moe]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_table, run_child

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


def make_checkpoint(directory: Path, moe: bool = False) -> None:
    """Save the benchmark model with transformers unless it is already there."""
    if (directory / "model.safetensors.index.json").is_file():
        return
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    if moe:
        config: LlamaConfig | MixtralConfig = MixtralConfig(
            hidden_size=1024,
            num_hidden_layers=12,
            intermediate_size=3072,
            num_attention_heads=16,
            num_key_value_heads=8,
            num_local_experts=8,
            num_experts_per_tok=2,
            vocab_size=32000,
            max_position_embeddings=4096,
            dtype="bfloat16",
        )
        model_class: type = MixtralForCausalLM
    else:
        config = LlamaConfig(
            hidden_size=1536,
            num_hidden_layers=20,
            intermediate_size=4096,
            num_attention_heads=24,
            num_key_value_heads=8,
            vocab_size=32000,
            max_position_embeddings=4096,
            dtype="bfloat16",
        )
        model_class = LlamaForCausalLM
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = model_class(config).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    print(f"saving a {n / 1e9:.2f}B-parameter model to {directory}")
    model.save_pretrained(directory, max_shard_size="500MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--moe", action="store_true", help="a ~1B Mixtral-style MoE instead")
    args = parser.parse_args()
    if args.dir is None:
        args.dir = Path("bench-out/mixtral-1b" if args.moe else "bench-out/llama-0.6b")
    make_checkpoint(args.dir, moe=args.moe)
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
            code = CHILD.format(imports=imports, load=load.format(dir=str(args.dir)))
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
