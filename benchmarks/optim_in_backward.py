"""Peak memory of a training step with an ordinary optimizer vs optimizer-in-backward.

Each mode runs in a fresh process (so CPU peak RSS is not polluted by the other run): build a
Llama of the given size, take ``--steps`` AdamW steps on random tokens, report the peak.
CPU: peak RSS of the process minus its RSS before the model was built. CUDA: max allocated.

    .venv/bin/python benchmarks/optim_in_backward.py                 # ~150M parameters on CPU
    .venv/bin/python benchmarks/optim_in_backward.py --device cuda --model-dim 2048 --layers 16

Expected: the fused run saves about one copy of the gradients (4 bytes per fp32 parameter),
minus the largest single gradient, which still exists for a moment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_one(args: argparse.Namespace) -> dict[str, float]:
    """Build the model and step it; return what was measured (in the child process)."""
    from lmhub.models.hub import get_model_hub
    from lmhub.train.memory import peak_memory_bytes
    from lmhub.train.optim_in_backward import fuse_optimizer_with_backward

    device = torch.device(args.device)
    torch.manual_seed(0)
    baseline = _rss_bytes() if device.type == "cpu" else 0
    hub = get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    config.model_dim, config.num_layers = args.model_dim, args.layers
    config.num_heads = config.num_kv_heads = args.model_dim // 64
    config.ffn_inner_dim = int(args.model_dim * 8 / 3) // 64 * 64
    config.vocab_size, config.max_seq_len = args.vocab, max(512, args.seq)
    model = hub.create_new_model(config, device=device)
    params = sum(p.numel() for p in model.parameters())

    def factory(ps: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(ps, lr=1e-4)

    if args.mode == "fused":
        optimizer = fuse_optimizer_with_backward(model, factory)
    else:
        optimizer = factory(list(model.parameters()))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), device=device)
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, args.vocab), ids[:, 1:].reshape(-1)
        )
        del logits
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = (time.perf_counter() - start) / args.steps
    peak = peak_memory_bytes(device) - baseline
    return {"params": params, "peak_bytes": peak, "seconds_per_step": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["plain", "fused", "both"], default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dim", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if args.mode != "both":
        print(json.dumps(run_one(args)))
        return
    results = {}
    for mode in ("plain", "fused"):
        argv = [sys.executable, __file__, "--mode", mode]
        for name in ("device", "model_dim", "layers", "vocab", "batch", "seq", "steps"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    plain, fused = results["plain"], results["fused"]
    grads_mib = plain["params"] * 4 / 2**20
    print(f"model: llama {args.model_dim}x{args.layers}, {plain['params'] / 1e6:.1f}M parameters")
    print(f"device {args.device}, batch {args.batch} x {args.seq}, {args.steps} AdamW steps")
    for mode, r in results.items():
        print(
            f"{mode:>5}: peak {r['peak_bytes'] / 2**20:8.1f} MiB, "
            f"{r['seconds_per_step'] * 1000:7.0f} ms/step"
        )
    saved = (plain["peak_bytes"] - fused["peak_bytes"]) / 2**20
    print(
        f"saved: {saved:.1f} MiB ({saved / (plain['peak_bytes'] / 2**20):.0%} of the plain peak; "
        f"one fp32 copy of the gradients is {grads_mib:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
