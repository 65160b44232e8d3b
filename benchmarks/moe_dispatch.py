"""MoE dispatch benchmark: lmhub's MoEFeedForward against transformers' sparse MoE block.

One Qwen3-MoE-shaped layer (model_dim 512, 32 experts of width 256, top 4, renormalised) with
the same random weights on both sides; transformers' block runs with its default experts
implementation (``grouped_mm``) and with ``eager`` (its per-expert loop), lmhub's with its
default (``F.grouped_mm``) and with its per-expert loop. For 1 token (a decode step), 32 and 512
tokens (prefill chunks) we report the median time of a forward (inference mode) and of a
forward + backward, and the ratio to transformers' default. Outputs are checked to agree.

    python benchmarks/moe_dispatch.py [--repeats 20] [--threads 2] [--device cpu|cuda] [--bf16]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_table
from lmhub.nn.decode_weights import cpu_model
from lmhub.nn.moe import MoeConfig, MoEFeedForward

DIM, EXPERTS, INNER, TOP_K = 512, 32, 256, 4


def build(device: torch.device, dtype: torch.dtype) -> dict[str, torch.nn.Module]:
    """lmhub's and transformers' blocks (two experts implementations each), same weights."""
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    torch.manual_seed(0)
    ours = MoEFeedForward(DIM, MoeConfig(num_experts=EXPERTS, top_k=TOP_K, expert_inner_dim=INNER))
    ours.router.init_params_(0.1)
    ours.experts.init_params_(0.05)
    blocks: dict[str, torch.nn.Module] = {}
    for impl in ("grouped_mm", "eager"):
        config = Qwen3MoeConfig(
            hidden_size=DIM,
            moe_intermediate_size=INNER,
            num_experts=EXPERTS,
            num_experts_per_tok=TOP_K,
            norm_topk_prob=True,
        )
        config._experts_implementation = impl
        hf = Qwen3MoeSparseMoeBlock(config)
        with torch.no_grad():
            hf.gate.weight.copy_(ours.router.weight)
            gate_up = torch.cat([ours.experts.gate_proj, ours.experts.up_proj], dim=1)
            hf.experts.gate_up_proj.copy_(gate_up)
            hf.experts.down_proj.copy_(ours.experts.down_proj)
        blocks[f"transformers ({impl})"] = hf
    loop = MoEFeedForward(DIM, MoeConfig(num_experts=EXPERTS, top_k=TOP_K, expert_inner_dim=INNER))
    loop.load_state_dict(ours.state_dict())
    loop.experts.kernel = "loop"
    blocks["lmhub (grouped_mm)"] = ours
    blocks["lmhub (per-expert loop)"] = loop
    return {name: b.to(device, dtype) for name, b in blocks.items()}


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    blocks = build(device, dtype)
    rows: list[list[object]] = []
    for tokens in (1, 32, 512):
        x = torch.randn(1, tokens, DIM, device=device, dtype=dtype)
        with torch.inference_mode():
            outs = {name: block(x) for name, block in blocks.items()}
        ref = outs["transformers (grouped_mm)"]
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        for name, out in outs.items():
            out = out[0] if isinstance(out, tuple) else out
            assert torch.allclose(out.float(), ref.float(), atol=tol, rtol=tol), name
        speeds: dict[str, tuple[float, float]] = {}
        for name, block in blocks.items():

            def forward(block: torch.nn.Module = block, x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return block(x)

            def train_step(block: torch.nn.Module = block, x: torch.Tensor = x) -> None:
                xg = x.detach().requires_grad_(True)
                out = block(xg)
                out = out[0] if isinstance(out, tuple) else out
                out.backward(torch.ones_like(out))  # a contiguous upstream gradient
                block.zero_grad(set_to_none=True)

            speeds[name] = (
                timed(forward, args.repeats, device),
                timed(train_step, max(args.repeats // 4, 3), device),
            )
        base = speeds["transformers (grouped_mm)"]
        for name, (fwd, step) in speeds.items():
            rows.append(
                [
                    tokens,
                    name,
                    f"{fwd * 1e3:.3f}",
                    f"{base[0] / fwd:.2f}x",
                    f"{step * 1e3:.2f}",
                    f"{base[1] / step:.2f}x",
                ]
            )
    where = cpu_model() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads, {dtype}")
    print(f"one MoE layer: dim {DIM}, {EXPERTS} experts of width {INNER}, top {TOP_K}")
    header = ["tokens", "implementation", "forward ms", "speed-up", "fwd+bwd ms", "speed-up"]
    print_table(header, rows)


if __name__ == "__main__":
    main()
