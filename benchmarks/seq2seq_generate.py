"""Greedy seq2seq generation, lmhub against transformers, on the same random weights: a
T5-v1.1-small-shaped model (77M) and fairseq2's ``base`` in NLLB's pre-norm form as an M2M100
(61M), both randomly initialised, exported by lmhub natively and loaded by transformers; batch 1
and 8, tokens per second (median of 3).

    python benchmarks/seq2seq_generate.py --threads 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import lmhub
import lmhub.hf
from _common import median, print_table  # type: ignore[import-not-found]
from lmhub.generation import generate_seq2seq

SHAPES = {
    "t5_v1_1_small": ("t5", {}),
    # M2M100 places positions from the padding id: pad 1 -> first position 2, as fairseq2.
    "transformer_base": ("transformer", {"norm_order": "pre", "pad_token_id": 1}),
}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(3):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    assert out is not None
    return median(times), out


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--layers", type=int, default=None, help="Shrink both stacks.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for arch, (family, extra) in SHAPES.items():
        hub = lmhub.get_model_hub(family)
        overrides = {**extra, "dropout_p": 0.0}
        if args.layers:
            overrides.update(num_layers=args.layers, num_decoder_layers=args.layers)
        config = lmhub.apply_overrides(hub.get_arch_config(arch), overrides)
        torch.manual_seed(0)
        model = hub.create_new_model(config).eval()
        with tempfile.TemporaryDirectory() as tmp:
            lmhub.hf.export(model, Path(tmp))
            hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp).eval()
        for batch in (1, 8):
            src = torch.randint(4, 1000, (batch, 24), generator=torch.Generator().manual_seed(1))
            n = args.new_tokens
            # No EOS on either side, so both make exactly n tokens.
            ours_s, ours = timed(generate_seq2seq, model, src, max_new_tokens=n, eos_token_id=[])
            with torch.no_grad():
                hf_s, theirs = timed(
                    hf.generate, input_ids=src, max_new_tokens=n, min_new_tokens=n,
                    do_sample=False,
                )  # fmt: skip
            same = torch.equal(ours, theirs)
            rows.append(
                [arch, batch, f"{batch * n / ours_s:.0f}", f"{batch * n / hf_s:.0f}",
                 f"{hf_s / ours_s:.2f}", same]
            )  # fmt: skip
    cpu = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    )
    print(f"{cpu}, {args.threads} thread(s), {args.new_tokens} new tokens, 24-token sources")
    print_table(
        ["shape", "batch", "lmhub tok/s", "transformers tok/s", "speed-up", "same tokens"], rows
    )


if __name__ == "__main__":
    main()
