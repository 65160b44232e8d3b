"""Encoder forward benchmark: lmhub's BERT and ModernBERT against transformers (not a test).

For each model, a randomly initialised transformers masked-LM model of the published base shape
is saved once; lmhub loads the same directory. Both run fp32 forwards (no grad) over the same
right-padded batch, alternating, and we report the median wall time and the ratio. Logits are
checked to agree first. Single-threaded by default, so the numbers say more about the code than
about the machine.

    python benchmarks/encoder.py [--rounds 5] [--batch 4] [--seq 128] [--threads 1]
                                 [--padding 0.25]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lmhub
from _common import median, print_table
from lmhub.models.registry import find_arch

# label -> (preset, transformers config class, masked-LM class, lmhub config overrides)
MODELS = {
    "bert_base_uncased": ("bert_base_uncased", "BertConfig", "BertForMaskedLM", {}),
    "modernbert_base": ("modernbert_base", "ModernBertConfig", "ModernBertForMaskedLM", {}),
    "modernbert_base, padded path": (
        "modernbert_base",
        "ModernBertConfig",
        "ModernBertForMaskedLM",
        {"unpadded": False},
    ),
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def seconds(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """One timed forward."""
    start = time.perf_counter()
    model(ids, attention_mask=mask)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--padding", type=float, default=0.25, help="the batch's mean share of padding"
    )
    args = parser.parse_args()
    import transformers

    torch.set_num_threads(args.threads)
    rows = []
    for label, (arch, config_name, model_name, ours_config) in MODELS.items():
        family = find_arch(arch)
        assert family is not None and family.hf is not None
        fields = family.hf.config_to_hf(family.archs.get(arch))
        fields.pop("model_type", None), fields.pop("architectures", None)
        config = getattr(transformers, config_name)(**fields)
        torch.manual_seed(0)
        theirs = getattr(transformers, model_name)(config).eval()
        with tempfile.TemporaryDirectory() as directory:
            theirs.save_pretrained(directory)
            ours = lmhub.load_model(directory, config=ours_config or None, progress=False)
            ours.eval()
            ids = torch.randint(5, config.vocab_size, (args.batch, args.seq))
            mask = torch.ones_like(ids)
            for row in range(args.batch):  # ragged: rows padded evenly from 0 to --padding
                real = args.seq - round(args.padding * 2 * args.seq * row / max(args.batch - 1, 1))
                mask[row, max(real, 1) :] = 0
            with torch.no_grad():
                diff = ours(ids, attention_mask=mask) - theirs(ids, attention_mask=mask).logits
                assert diff[mask.bool()].abs().max() <= 1e-4
                lm, hf = [], []
                for _ in range(args.rounds):
                    lm.append(seconds(ours, ids, mask))
                    hf.append(seconds(theirs, ids, mask))
        rows.append(
            [
                label,
                f"{median(lm) * 1000:.0f}",
                f"{median(hf) * 1000:.0f}",
                f"{median(hf) / median(lm):.2f}",
            ]
        )
    print(
        f"{cpu_model()}, {args.threads} thread(s), batch {args.batch} x {args.seq} "
        f"({args.padding:.0%} padding), fp32"
    )
    print_table(["model", "lmhub ms", "transformers ms", "speed-up"], rows)


if __name__ == "__main__":
    main()
