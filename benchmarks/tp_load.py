"""Per-rank memory of a tensor-parallel load (not a test): a ~0.6B-parameter bf16 Llama (model_dim
1536, 20 layers, ffn 4096, 24 heads, 8 KV heads, untied vocabulary 32000) is saved once by
lmhub; then one process loads it whole, and two gloo ranks (torchrun) load it split by TP=2.
Each reports its load time and peak RSS (VmHWM) after the first logits, which touch every
weight page it holds, the growth over the state right after imports, and its RSS at the end split
into anonymous memory and file-backed pages (mapped checkpoint pages, shared libraries).

    python benchmarks/tp_load.py [--dir bench-out/llama-0.6b-lmhub]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table

CONFIG = {
    "model_dim": 1536, "num_layers": 20, "ffn_inner_dim": 4096, "num_heads": 24,
    "num_kv_heads": 8, "vocab_size": 32000, "tie_embeddings": False, "bos_token_id": 1,
    "eos_token_id": 2, "pad_token_id": 0,
}  # fmt: skip

CHILD = r"""
import json, os, sys, time
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
import torch
import torch.distributed
from lmhub import get_model_hub
from lmhub.parallel import setup_gangs
torch.set_num_threads(1)
hub = get_model_hub("llama")
config = hub.get_model_config("llama_tiny", json.loads(sys.argv[2]))
tp = "WORLD_SIZE" in os.environ
gangs = setup_gangs(tp_size=2) if tp else None
base = rss("VmRSS")
start = time.perf_counter()
if tp:
    model = hub.load_custom_model(sys.argv[1], config, gangs=gangs, progress=False)
else:
    model = hub.load_custom_model(sys.argv[1], config, device="cpu", progress=False)
elapsed = time.perf_counter() - start
with torch.no_grad():
    model(torch.arange(8)[None])
print(json.dumps({"rank": gangs.tp.rank if tp else -1, "seconds": elapsed,
                  "peak_mb": rss("VmHWM"), "growth_mb": rss("VmHWM") - base,
                  "anon_mb": rss("RssAnon"), "file_mb": rss("RssFile")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="bench-out/llama-0.6b-lmhub")
    args = parser.parse_args()
    root = Path(args.dir)
    if not (root / "model.safetensors").is_file():
        import torch

        from lmhub import get_model_hub, save_checkpoint

        hub = get_model_hub("llama")
        torch.manual_seed(0)
        model = hub.create_new_model(
            hub.get_model_config("llama_tiny", CONFIG), device="cpu", dtype=torch.bfloat16
        )
        save_checkpoint(root, model, max_shard_size="100GB")
        del model
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(CHILD)
    try:
        config = json.dumps(CONFIG)
        runs = [[sys.executable, script.name, str(root), config]]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        runs.append([*torchrun, "--nproc-per-node", "2", script.name, str(root), config])
        rows = []
        for command in runs:
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            for line in out.stdout.splitlines():
                if line.startswith("{"):
                    r = json.loads(line)
                    who = "one process" if r["rank"] < 0 else f"TP=2 rank {r['rank']}"
                    rows.append([who, f"{r['seconds']:.2f}", f"{r['peak_mb']:.0f}",
                                 f"{r['growth_mb']:.0f}", f"{r['anon_mb']:.0f}",
                                 f"{r['file_mb']:.0f}"])  # fmt: skip
    finally:
        os.unlink(script.name)
    size = sum(f.stat().st_size for f in root.glob("*.safetensors")) / 2**20
    print(f"checkpoint: {size:.0f} MiB of bf16 safetensors")
    print(f"CPU: {_cpu_model()}")
    print_table(
        ["load", "load s", "peak RSS MiB", "growth MiB", "anon MiB", "file-backed MiB"], rows
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
