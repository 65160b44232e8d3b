"""Training speed and memory: lmhub's trainer against a plain transformers training loop.

A 58M-parameter Llama (model_dim 512, 8 layers, 8 heads, ffn 1376, vocab 32000; ``--size 0.5b``:
Qwen2.5-0.5B's trunk with a 32000-token vocabulary, 0.41B parameters), batches of
8 x 256 tokens, AdamW, ``--threads`` torch threads (default 2). Both sides start from the same
weights (exported once by lmhub as an HF directory, which ``LlamaForCausalLM`` loads) and train
on the same token rows (drawn once from lmhub's data pipeline over the shipped Shakespeare text
and saved). Every (side, mode) run is a fresh subprocess, so each peak RSS is clean; the runs
are interleaved round by round (lmhub, transformers, lmhub, ...) and the medians reported, since
the machine may be shared.

Modes:
  fp32        lmhub ``precision: fp32`` vs transformers fp32 (sdpa, ``loss.backward()``, AdamW)
  bf16-mixed  lmhub ``precision: bf16-mixed`` vs transformers under the same bf16 autocast; the
              issue's target compares it with transformers *fp32*
  lora        LoRA rank 8 (alpha 16, q/k/v/o + gate/up/down), fp32: lmhub's ``lora:`` section vs
              PEFT's ``get_peft_model`` on transformers

    .venv/bin/python benchmarks/train.py                      # all modes, 2 rounds
    .venv/bin/python benchmarks/train.py --modes fp32 --steps 5 --rounds 3
    .venv/bin/python benchmarks/train.py --set compile=false    # lmhub's eager step

lmhub's side trains with ``compile: true`` (each layer through ``torch.compile``; the compile
happens in the warmup step, so use at least one) unless ``--set compile=false``.

Peak RSS is the whole process's ``ru_maxrss`` (the interpreter, torch and each side's imports
included). Targets (issue 8): fp32 >= 0.95x transformers' tokens/s at <= 0.7x its peak RSS;
bf16-mixed >= 2x transformers-fp32 tokens/s.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import median, print_table

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "58m": {"model_dim": 512, "num_layers": 8, "num_heads": 8, "num_kv_heads": 8,
            "ffn_inner_dim": 1376, "vocab_size": 32000, "max_seq_len": 256},
    # Qwen2.5-0.5B's trunk (896 wide, 24 layers, 14 heads, 2 key-value heads, ffn 4864) with a
    # 32000-token vocabulary: 0.41B parameters.
    "0.5b": {"model_dim": 896, "num_layers": 24, "num_heads": 14, "num_kv_heads": 2,
             "ffn_inner_dim": 4864, "vocab_size": 32000, "max_seq_len": 256},
}  # fmt: skip
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Exports the shared initial weights and saves the token rows both sides train on.
_SETUP = """
import torch, lmhub
from lmhub.hf.export import export
from lmhub.models.hub import get_model_hub
from lmhub.data.tokenizers import load_tokenizer
torch.manual_seed(0)
hub = get_model_hub("llama")
model = hub.create_new_model(hub.resolve_config(MODEL, hub.get_arch_config("llama_tiny")))
export(model, WORK / "init", tokenizer=load_tokenizer("byte"))
trainer, _ = build_trainer(config_for("fp32", "setup"))
batches = [trainer.train_batches.next_batch() for _ in range(WARMUP + STEPS)]
torch.save(torch.stack([b["input_ids"] for b in batches]), WORK / "rows.pt")
print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))
"""

_LMHUB = """
import time, resource, torch
torch.set_num_threads(THREADS)
config = config_for(MODE, "lmhub")
trainer, _ = build_trainer(config)
rows = torch.load(WORK / "rows.pt")
times = []
for i in range(WARMUP + STEPS):
    start = time.perf_counter()
    trainer.train_step()
    times.append(time.perf_counter() - start)
steady = sorted(times[WARMUP:])[len(times[WARMUP:]) // 2]
print(json.dumps({"tokens_per_s": rows[0].numel() / steady,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads(), "compile": config.compile,
                  "mmap_threshold": config.malloc_mmap_threshold_mib}))
"""

_TRANSFORMERS = """
import contextlib, json, time, resource, torch
from pathlib import Path
torch.set_num_threads({threads})
from transformers import LlamaForCausalLM
WORK, MODE = Path({work!r}), {mode!r}
WARMUP, STEPS = {warmup}, {steps}
model = LlamaForCausalLM.from_pretrained(WORK / "init", attn_implementation="sdpa",
                                         torch_dtype=torch.float32)
if MODE == "lora":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules={targets!r}))
model.train()
params = [p for p in model.parameters() if p.requires_grad]
decay = [p for p in params if p.dim() >= 2]
rest = [p for p in params if p.dim() < 2]
groups = [g for g in ({{"params": decay, "weight_decay": 0.1}},
                      {{"params": rest, "weight_decay": 0.0}}) if g["params"]]
optimizer = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95))
rows = torch.load(WORK / "rows.pt")
cast = (torch.autocast("cpu", dtype=torch.bfloat16) if MODE == "bf16-mixed"
        else contextlib.nullcontext())
times = []
for i in range(WARMUP + STEPS):
    start = time.perf_counter()
    with cast:
        loss = model(input_ids=rows[i], labels=rows[i]).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - start)
steady = sorted(times[WARMUP:])[len(times[WARMUP:]) // 2]
print(json.dumps({{"tokens_per_s": rows[0].numel() / steady,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "threads": torch.get_num_threads()}}))
"""


def _config_block(args: argparse.Namespace, work: Path, mode: str) -> str:
    """Code defining MODEL, WORK, the step counts and ``config_for(mode, name)``."""
    corpus = work / "corpus.txt"
    return textwrap.dedent(f"""
        import json
        from pathlib import Path
        from lmhub.config import apply_overrides
        from lmhub.train.config import TrainConfig
        from lmhub.train.run import build_trainer
        MODEL, WORK, MODE = {SIZES[args.size]!r}, Path({str(work)!r}), {mode!r}
        THREADS, WARMUP, STEPS = {args.threads}, {args.warmup}, {args.steps}

        def config_for(mode, name):
            lora = {{"rank": 8, "alpha": 16, "targets": {TARGETS!r}}} if mode == "lora" else None
            config = apply_overrides(TrainConfig(), {{
                "model": str(WORK / "init"),
                "tokenizer": "byte", "seq_len": 256, "batch_size": 8,
                "data": {{"train": {str(corpus)!r}, "cache_dir": str(WORK / "tokens")}},
                "max_steps": 1000, "precision": "fp32" if mode == "lora" else mode,
                "optimizer": {{"lr": 3e-4}}, "lora": lora,
                "log": {{"progress": "none", "every_steps": 1000}},
                "checkpoint": {{"register_cards": False}}, "compile": True,
                "output_dir": str(WORK / ("run_" + name + "_" + mode)), "resume": "never",
            }})
            return apply_overrides(config, {list(args.set)!r})
    """)


def run_child(code: str) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter; return the JSON its last line prints (or fail with
    its stderr)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"a benchmark child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="fp32,bf16-mixed,lora")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side per mode")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a train-config override for lmhub (repeatable), e.g. malloc_mmap_threshold_mib=null",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="58m", help="model shape")
    args = parser.parse_args()
    paths = [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="lmhub-bench-train-") as tmp:
        work = Path(tmp)
        packed = importlib.resources.files("lmhub.train.examples") / "tinyshakespeare.txt.gz"
        (work / "corpus.txt").write_bytes(gzip.decompress(packed.read_bytes()))
        setup = run_child(_config_block(args, work, "fp32") + textwrap.dedent(_SETUP))
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for mode in modes:
                ours = run_child(_config_block(args, work, mode) + textwrap.dedent(_LMHUB))
                theirs = run_child(
                    textwrap.dedent(_TRANSFORMERS).format(
                        threads=args.threads, work=str(work), mode=mode, warmup=args.warmup,
                        steps=args.steps, targets=TARGETS,
                    )
                )  # fmt: skip
                results.setdefault(("lmhub", mode), []).append(ours)
                results.setdefault(("transformers", mode), []).append(theirs)
                print(f"round {round_ + 1} {mode}: lmhub {ours['tokens_per_s']:.0f} tok/s "
                      f"{ours['peak_rss_mib']:.0f} MiB, transformers "
                      f"{theirs['tokens_per_s']:.0f} tok/s {theirs['peak_rss_mib']:.0f} MiB",
                      file=sys.stderr, flush=True)  # fmt: skip

    def med(side: str, mode: str, key: str) -> float:
        return median([r[key] for r in results[(side, mode)]])

    first = results[("lmhub", modes[0])][0]
    print(f"CPU: {_cpu_model()}; torch threads: {first['threads']}; lmhub compile: "
          f"{first['compile']}, malloc_mmap_threshold_mib: {first['mmap_threshold']}; "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"model: {setup['params'] / 1e6:.1f}M parameters; batch 8 x 256; "
          f"{args.rounds} rounds x {args.steps} timed steps after {args.warmup} warmup"
          )  # fmt: skip
    rows = []
    hf_fp32 = med("transformers", "fp32", "tokens_per_s") if "fp32" in modes else None
    for mode in modes:
        ours_tps, theirs_tps = med("lmhub", mode, "tokens_per_s"), med("transformers", mode,
                                                                        "tokens_per_s")  # fmt: skip
        ours_rss, theirs_rss = med("lmhub", mode, "peak_rss_mib"), med("transformers", mode,
                                                                        "peak_rss_mib")  # fmt: skip
        vs_fp32 = f"{ours_tps / hf_fp32:.2f}x" if hf_fp32 else "-"
        rows.append([
            mode, f"{ours_tps:.0f}", f"{theirs_tps:.0f}", f"{ours_tps / theirs_tps:.2f}x",
            vs_fp32, f"{ours_rss:.0f}", f"{theirs_rss:.0f}", f"{ours_rss / theirs_rss:.2f}x",
        ])  # fmt: skip
    print_table(
        ["mode", "lmhub tok/s", "transformers tok/s", "speed ratio", "vs transformers fp32",
         "lmhub peak RSS MiB", "transformers peak RSS MiB", "RSS ratio"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
