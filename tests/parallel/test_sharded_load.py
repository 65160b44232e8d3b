"""A tensor-parallel load reads each rank's slices of the memory-mapped checkpoint, not the whole
file: the pages of the file a rank has mapped (its ``/proc/self/smaps`` Rss of the mapping)
after loading and reading every local weight are measured against the file's size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.distributed.tensor import DTensor

from lmhub import get_model_hub, save_checkpoint
from lmhub.parallel import setup_gangs
from tests.parallel.launch import launch

# Wide enough that a column split skips pages: rows of fc weights span several 4 KiB pages.
OVERRIDES = {
    "model_dim": 1024, "num_layers": 1, "num_heads": 8, "num_kv_heads": 8, "ffn_inner_dim": 4096,
    "vocab_size": 256, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
}  # fmt: skip


def mapped_bytes(path: Path) -> int:
    """The bytes of ``path`` mapped into this process's page tables (pages it has touched)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


def _load_and_touch(path: Path, gangs: object = None) -> float:
    hub = get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", OVERRIDES)
    if gangs is None:
        model = hub.load_custom_model(path, config, device="cpu", progress=False)
    else:
        model = hub.load_custom_model(path, config, gangs=gangs, progress=False)  # type: ignore[arg-type]
    total = 0.0
    for p in model.parameters():  # read every weight this rank holds
        local = p.to_local() if isinstance(p, DTensor) else p
        total += float(local.detach().double().sum())
    assert math.isfinite(total)  # every value was read
    return (
        mapped_bytes((path / "model.safetensors").resolve())
        / (path / "model.safetensors").stat().st_size
    )


def _tp_worker(root: str) -> None:
    gangs = setup_gangs(tp_size=2)
    fraction = _load_and_touch(Path(root) / "ckpt", gangs)
    (Path(root) / f"rank{gangs.tp.rank}.json").write_text(json.dumps(fraction))


@pytest.mark.slow
def test_tp2_load_reads_less_than_the_file_per_rank(tmp_path: Path) -> None:
    if not Path("/proc/self/smaps").is_file():
        pytest.skip("needs Linux's /proc/self/smaps to see which pages were read")
    hub = get_model_hub("llama")
    torch.manual_seed(0)
    save_checkpoint(
        tmp_path / "ckpt", hub.create_new_model(hub.get_model_config("llama_tiny", OVERRIDES))
    )
    # One process reading the whole model maps (nearly) the whole file: the measure works.
    whole = _load_and_touch(tmp_path / "ckpt")
    launch(_tp_worker, str(tmp_path))
    fractions = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    print(f"file fraction mapped: one process {whole:.3f}, TP=2 ranks {fractions}")
    assert whole > 0.95
    # Row splits (q/k/v, gate/up, embedding, head) map half of their bytes. Column splits
    # (o/down) touch every row, and the kernel maps up to 64 KiB around each touched page, so
    # those map nearly whole: measured 0.73-0.74 of the file per rank.
    assert all(f < 0.8 for f in fractions), fractions
