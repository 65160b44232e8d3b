"""FSDP2 over 2 gloo processes trains exactly as one process does on the whole batch, and its
sharded (DCP) checkpoint loads back into one process."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.tensor import DTensor

from lmhub import get_model_hub, save_checkpoint
from lmhub.parallel import setup_gangs
from lmhub.parallel.dcp import load_sharded, save_sharded
from tests.parallel.launch import launch

STEPS = 4


def _config():
    hub = get_model_hub("llama")
    return hub, hub.get_model_config("llama_tiny", {"num_layers": 2, "attn_impl": "eager"})


def _loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)


def _train(
    model: torch.nn.Module, batches: list[torch.Tensor]
) -> tuple[list[torch.Tensor], torch.optim.Optimizer]:
    optimizer = _optimizer(model)
    losses = []
    for batch in batches:
        loss = _loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.detach())
    return losses, optimizer


def _fsdp_worker(root: str) -> None:
    gangs = setup_gangs()
    assert (gangs.dp.size, gangs.tp.size) == (2, 1)
    hub, config = _config()
    full = hub.load_custom_model(root, config, device="cpu", progress=False)
    sharded = hub.load_custom_model(root, config, gangs=gangs, progress=False)
    weight = sharded.layers[0].ffn.up_proj.weight
    assert isinstance(weight, DTensor) and weight.to_local().shape[0] == weight.shape[0] // 2
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 256, (4, 17), generator=generator) for _ in range(STEPS)]
    rank = gangs.dp.rank
    # An inference forward first: FSDP2 must not keep stale gathered root weights afterwards.
    with torch.no_grad():
        torch.testing.assert_close(sharded(batches[0]), full(batches[0]), atol=1e-5, rtol=1e-5)
    want, _ = _train(full, batches)
    got, optimizer = _train(sharded, [b[2 * rank : 2 * rank + 2] for b in batches])
    for step, (mine, ref) in enumerate(zip(got, want)):
        dist.all_reduce(mine, group=gangs.dp.group)  # type: ignore[arg-type]
        assert abs(mine.item() / 2 - ref.item()) < 1e-5, (step, mine.item() / 2, ref.item())
    # Adam divides by the gradient's size, so rounding differences in small gradients grow to
    # ~1e-5 (of updates ~4e-3); a wrong gradient average would be off by the updates themselves.
    for (name, p), q in zip(sharded.named_parameters(), full.parameters()):
        diff = (p.full_tensor() - q.detach()).abs().max().item()
        assert diff < 5e-5, (name, diff)
    # A sharded DCP checkpoint of the run, for the parent to load in one process.
    save_sharded(Path(root) / "dcp", sharded, optimizer)
    if rank == 0:
        save_checkpoint(Path(root) / "single", full)


def test_fsdp2_training_matches_one_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hub, config = _config()
    save_checkpoint(tmp_path, hub.create_new_model(config, device="cpu"))
    launch(_fsdp_worker, str(tmp_path))
    # Reshard 2 -> 1: the DCP checkpoint loads into a plain model and its optimizer.
    model = hub.load_custom_model(tmp_path, config, device="cpu", progress=False)
    optimizer = _optimizer(model)
    load_sharded(tmp_path / "dcp", model, optimizer)
    ref = hub.load_custom_model(tmp_path / "single", config, device="cpu", progress=False)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert (p - q).abs().max().item() < 5e-5, name
    states = list(optimizer.state.values())
    assert len(states) == len(list(model.parameters()))
    assert all(int(s["step"]) == STEPS and s["exp_avg_sq"].abs().sum() > 0 for s in states)
    assert not (tmp_path / "dcp.partial").exists()
