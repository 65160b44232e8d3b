"""Generation benchmark: lmhub.generate against transformers' generate() (not a test).

A ~58M-parameter model (model_dim 512, 8 layers, 8 heads, ffn 1376, vocab 32000) of any family
(``--family``, default llama; see ``benchmarks/_models.py``), or a published preset as it is
(``--arch``), is built with random weights by transformers, saved, and loaded by lmhub, so both
run the same weights. Each
generates 128 greedy tokens after a 32-token prompt, forced to the end (no EOS on either side;
transformers also gets min_new_tokens), in fp32 with 2 threads, at batch 1 and batch 8. The
runs alternate between the libraries; after a warm-up (where lmhub measures its kernels) we
report median tokens/s (new tokens of the whole batch per second of the generate call, prefill
included) and lmhub's ratio. The CPU model, the thread count and the kernel lmhub chose for each
weight shape and row count are printed beside the table, and every runner's tokens are checked
against transformers'.

    python benchmarks/generate.py [--repeats 5] [--threads 2] [--bf16] [--no-fused] [--compile]
                                  [--dir DIR] [--moe | --family qwen2 | --arch NAME]

``--bf16`` adds rows with both models in bfloat16; ``--no-fused`` adds lmhub rows without its
decode-time model (``lmhub.nn.decode_weights``), to show what it brings; ``--compile`` adds
lmhub rows with ``compile_decode=True`` (``lmhub.generation.compiled``). The "first call" column
is each runner's warm-up call, in seconds: it includes lmhub's kernel measurements and, for the
compiled rows, the compilation (once per process: the batch-8 warm-up reuses the graph).
After each batch size's rows, a ceiling row gives the tokens/s of the step's weight products
alone (no attention, norms or overhead; :func:`products_bound`): no implementation reading the
same fp32 weights once per token decodes faster at batch 1. ``--dir`` keeps the checkpoint
there for the next run (default: a temporary directory). On a shared machine, pin the run
(``taskset -c 0,1``) and compare ratios, which both sides' noise affects alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, print_table
from _models import add_model_args, bench_config, describe, save_hf_checkpoint
from lmhub.nn.decode_weights import cpu_model, kernel_choices

PROMPT, NEW = 32, 128
SHAPE = {
    "model_dim": 512,
    "num_layers": 8,
    "num_heads": 8,
    "num_kv_heads": 8,
    "ffn_inner_dim": 1376,
    "vocab_size": 32000,
    "max_seq_len": 2048,
}
"""The benchmark size of ``--family`` (lmhub config fields)."""

MOE_SHAPE = {
    "model_dim": 512,
    "num_layers": 4,
    "num_heads": 8,
    "num_kv_heads": 8,
    "ffn_inner_dim": 1024,
    "vocab_size": 32000,
    "max_seq_len": 2048,
}
"""``--moe``: an ~80M-parameter Mixtral of 8 experts, top 2 (~30M active): the MoE dispatch."""


def runners(
    directory: Path, dtype: torch.dtype, fused: bool, compiled: bool = False
) -> dict[str, Callable[..., torch.Tensor]]:
    """Return ``{name: run(ids) -> output ids}`` for transformers and lmhub on the same weights."""
    from transformers import AutoModelForCausalLM

    import lmhub

    hf = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).eval()
    ours = lmhub.load_model(directory, dtype=dtype, progress=False).eval()

    def run_hf(ids: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=NEW,
                min_new_tokens=NEW,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )

    def run_lmhub(
        ids: torch.Tensor, fused_weights: bool = True, compile_decode: bool = False
    ) -> torch.Tensor:
        return lmhub.generate(
            ours,
            ids,
            max_new_tokens=NEW,
            fused_weights=fused_weights,
            compile_decode=compile_decode,
        )

    out: dict[str, Callable[..., torch.Tensor]] = {"transformers": run_hf, "lmhub": run_lmhub}
    if fused:
        out["lmhub (no decode-time model)"] = lambda ids: run_lmhub(ids, fused_weights=False)
    if compiled:
        out["lmhub (compiled decode)"] = lambda ids: run_lmhub(ids, compile_decode=True)
    return out


def measure(
    run: dict[str, Callable[..., torch.Tensor]], batch: int, repeats: int, vocab: int
) -> dict[str, tuple[float, float]]:
    """Median tokens/s of each runner, alternating runners within each repeat, and the seconds
    of its warm-up (first) call."""
    ids = torch.randint(0, vocab, (batch, PROMPT), generator=torch.Generator().manual_seed(batch))
    outputs: dict[str, torch.Tensor] = {}
    first: dict[str, float] = {}
    for name, fn in run.items():  # warm-up (and first-call setup: kernels, compilation)
        start = time.perf_counter()
        outputs[name] = fn(ids)
        first[name] = time.perf_counter() - start
    reference = outputs["transformers"]
    for name, out in outputs.items():
        assert out.shape == (batch, PROMPT + NEW), (name, out.shape)
        if not torch.equal(out, reference):
            sys.exit(f"{name} differs from transformers in {(out != reference).sum()} tokens")
    times: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(repeats):
        for name, fn in run.items():
            start = time.perf_counter()
            fn(ids)
            times[name].append(time.perf_counter() - start)
    return {name: (batch * NEW / median(ts), first[name]) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also measure in bfloat16")
    parser.add_argument("--no-fused", action="store_true", help="also run lmhub plain")
    parser.add_argument(
        "--compile", action="store_true", help="also run lmhub with compile_decode=True"
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to save the checkpoint")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (both sides)")
    add_model_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    family, config = bench_config(
        args.family, args.arch, MOE_SHAPE if args.moe else SHAPE, moe=args.moe
    )
    with tempfile.TemporaryDirectory(prefix="lmhub-gen-bench-") as scratch:
        directory = args.dir or Path(scratch)
        save_hf_checkpoint(family, config, directory)
        rows = table_rows(directory, args, config.vocab_size)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"{describe(family, config, args.arch)}; prompt {PROMPT}, {NEW} new greedy tokens, "
        f"median of {args.repeats}; tokens identical to transformers'"
    )
    headers = ["implementation", "dtype", "batch", "tokens/s", "vs transformers", "first call"]
    print_table(headers, rows)
    print("\nlmhub's kernels (measured at first use): [out, in] weight, dtype, rows -> kernel")
    for (_, out_f, in_f, dtype, _, rows, _), kernel in sorted(
        kernel_choices().items(), key=lambda kv: (str(kv[0][3]), kv[0][5], kv[0][1], kv[0][2])
    ):
        print(f"  [{out_f}, {in_f}] {str(dtype).removeprefix('torch.')} rows {rows}: {kernel}")


def products_bound(directory: Path, dtype: torch.dtype, batch: int, repeats: int) -> float:
    """Tokens/s if a decode step cost nothing but its weight products: one product of ``batch``
    rows through every linear weight of the model (the output head included, the embedding
    table not, as a step reads one row of it), timed alone, by the faster of ``F.linear`` and
    (one row) ``torch.mv``. Decoding at batch 1 streams every weight once per token, so this is
    about the ceiling of any implementation that reads the same weights, whatever its per-step
    overhead."""
    import lmhub

    model = lmhub.load_model(directory, dtype=dtype, progress=False).eval()
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(batch, w.shape[1], dtype=dtype) for w in weights]
    kernels: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = [
        torch.nn.functional.linear
    ]
    if batch == 1:
        kernels.append(lambda x, w: torch.mv(w, x[0]))
    best = float("inf")
    with torch.inference_mode():
        for kernel in kernels:
            sweeps = []
            for _ in range(max(3, repeats) * 4):
                start = time.perf_counter()
                for x, w in zip(inputs, weights, strict=True):
                    kernel(x, w)
                sweeps.append(time.perf_counter() - start)
            best = min(best, median(sweeps))
    return batch / best


def table_rows(directory: Path, args: argparse.Namespace, vocab: int) -> list[list[object]]:
    """Measure every configuration; one table row per (runner, dtype, batch)."""
    rows: list[list[object]] = []
    dtypes = [torch.float32] + ([torch.bfloat16] if args.bf16 else [])
    for dtype in dtypes:
        run = runners(directory, dtype, args.no_fused, args.compile)
        for batch in (1, 8):
            speeds = measure(run, batch, args.repeats, vocab)
            base = speeds["transformers"][0]
            dt = str(dtype).removeprefix("torch.")
            for name, (speed, first) in speeds.items():
                ratio = f"{speed / base:.2f}x"
                rows.append([name, dt, batch, f"{speed:.1f}", ratio, f"{first:.1f} s"])
            bound = products_bound(directory, dtype, batch, args.repeats)
            name = "ceiling: the weight products alone"
            rows.append([name, dt, batch, f"{bound:.1f}", f"{bound / base:.2f}x", "-"])
    return rows


if __name__ == "__main__":
    main()
