"""A tensor-parallel load reads each rank's slices of the checkpoint, not the whole file: each
split tensor is read half by each of two gloo ranks (the halves together exactly once), only the
small replicated ones (norms) whole, nothing through a memory map; and the split model's logits
equal the unsharded model's. Phi-3's HF export has fused qkv and gate_up tensors, which the
weight map splits: each rank reads its rows of every part of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lmhub.models.hub as hub_module
from lmhub import get_model_hub, save_checkpoint
from lmhub.checkpoint.readers import CheckpointReader, read_safetensors_header
from lmhub.hf.export import export
from lmhub.parallel import setup_gangs
from tests.parallel.launch import launch

CASES = {
    "llama": (
        "llama_tiny",
        {"vocab_size": 256, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2},
    ),
    "phi3": ("phi3_tiny", {"vocab_size": 260}),
}


def _config(family: str):
    arch, overrides = CASES[family]
    hub = get_model_hub(family)
    return hub, hub.get_model_config(arch, {**overrides, "attn_impl": "eager"})


def _mapped(path: Path) -> bool:
    """Whether ``path`` is memory-mapped into this process."""
    return str(path.resolve()) in Path("/proc/self/maps").read_text()


def _tp_worker(root: str) -> None:
    gangs = setup_gangs(tp_size=2)
    readers: list[CheckpointReader] = []
    opener = hub_module.open_checkpoint

    def recording_open(*args: object, **kwargs: object) -> CheckpointReader:
        reader = opener(*args, **kwargs)  # type: ignore[arg-type]
        readers.append(reader)
        return reader

    hub_module.open_checkpoint = recording_open  # type: ignore[assignment]
    report = {}
    for family in CASES:
        hub, config = _config(family)
        path = Path(root) / family
        split = hub.load_custom_model(path, config, gangs=gangs, progress=False)
        assert not _mapped(path / "model.safetensors")
        ids = torch.tensor([[5, 17, 33, 2, 9, 11, 40, 3]])
        with torch.no_grad():
            got = split(ids)
        torch.save(got, Path(root) / f"{family}-rank{gangs.tp.rank}.pt")
        report[family] = readers[-1].read_log.bytes_by_name
    (Path(root) / f"rank{gangs.tp.rank}.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_tp2_load_reads_only_each_ranks_slices(tmp_path: Path) -> None:
    torch.manual_seed(0)
    want = {}
    for family in CASES:
        hub, config = _config(family)
        model = hub.create_new_model(config, device="cpu")
        if family == "phi3":
            export(model, tmp_path / family)
        else:
            save_checkpoint(tmp_path / family, model)
        with torch.no_grad():
            want[family] = model(torch.tensor([[5, 17, 33, 2, 9, 11, 40, 3]]))
    launch(_tp_worker, str(tmp_path))
    reads = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for family in CASES:
        for r in (0, 1):
            got = torch.load(tmp_path / f"{family}-rank{r}.pt")
            torch.testing.assert_close(got, want[family], atol=1e-5, rtol=1e-5)
        header = read_safetensors_header(tmp_path / family / "model.safetensors")
        sizes = {name: info.end - info.start for name, info in header.tensors.items()}
        r0, r1 = reads[0][family], reads[1][family]
        assert set(r0) == set(r1) == set(sizes)  # every tensor was read, none twice over
        for name, size in sizes.items():
            whole = r0[name] == r1[name] == size
            assert r0[name] + r1[name] == size or (whole and size < 4096), (name, size, r0, r1)
        data = sum(sizes.values())
        for r in (r0, r1):
            print(f"{family}: a rank read {sum(r.values()) / data:.3f} of the checkpoint")
            assert sum(r.values()) < 0.52 * data
    fused = [name for name in sizes if "qkv_proj" in name or "gate_up_proj" in name]
    assert fused and all(reads[0]["phi3"][n] * 2 == sizes[n] for n in fused)
