"""Checkpoints of sharded runs: DCP shards with per-rank trainer state, resumed at another world
size (2 -> 1 and 1 -> 2) with the same steps, an atomic save, and ``lmhub checkpoint
consolidate`` writing one HF directory."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import lmhub
import lmhub.assets.store as store
from lmhub.cli.main import main
from lmhub.errors import ModelCheckpointError
from lmhub.parallel import setup_gangs
from lmhub.parallel.shard import full_state_dict
from lmhub.train.config import TrainConfig
from lmhub.train.resume import TrainState, find_resume_checkpoint, list_checkpoints, rng_state
from lmhub.train.run import train
from lmhub.train.sharded import (
    DCP_DIR,
    consolidate_checkpoint,
    load_any_train_checkpoint,
    rank_state_file,
    save_sharded_train_checkpoint,
)
from lmhub.train.trainer import build_optimizer
from tests.parallel.launch import launch
from tests.parallel.torchrun import torchrun_train
from tests.train.helpers import metric_rows, tiny_config, write_text

STEPS = 6


def _config(tmp_path: Path, name: str, **overrides: object) -> TrainConfig:
    data = write_text(tmp_path, chars=4000)
    return tiny_config(
        tmp_path,
        data,
        max_steps=STEPS,
        batch_size=4,
        output_dir=str(tmp_path / name),
        run_name=name,
        checkpoint={"every_steps": 3, "keep_last": 0},
        **overrides,
    )


def _losses(output_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metric_rows(output_dir)}


def _assert_close(got: dict[int, float], want: dict[int, float], steps: range) -> None:
    for step in steps:
        assert abs(got[step] - want[step]) < 2e-5, (step, got[step], want[step])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One uninterrupted one-process run and one 2-rank FSDP run, both checkpointing at 3, 6."""
    tmp_path = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:  # the per-test card folder is not set up yet
        patch.setenv("LMHUB_CARDS_DIR", str(tmp_path / "cards"))
        train(_config(tmp_path, "one"))
        torchrun_train(_config(tmp_path, "two"), 2)
        yield tmp_path


@pytest.mark.slow
def test_sharded_checkpoints_hold_shards_and_per_rank_state(runs: Path) -> None:
    step = runs / "two" / "checkpoints" / "step_3"
    assert (step / DCP_DIR / ".metadata").is_file()
    assert len(list((step / DCP_DIR).glob("*.distcp"))) == 2  # one file of shards per rank
    for rank in (0, 1):
        state = torch.load(step / rank_state_file(rank), weights_only=True)
        assert state["step"] == 3 and "torch" in state["rng"] and state["data_position"]
    assert not (step / "model.safetensors").exists()
    _assert_close(_losses(runs / "two"), _losses(runs / "one"), range(1, STEPS + 1))


@pytest.mark.slow
def test_resume_two_ranks_on_one(runs: Path, tmp_path: Path) -> None:
    config = _config(runs, "two_to_one", resume=str(runs / "two" / "checkpoints" / "step_3"))
    train(config)
    got = _losses(Path(config.output_dir))
    assert sorted(got) == [4, 5, 6]
    _assert_close(got, _losses(runs / "two"), range(4, STEPS + 1))
    # The same model and optimizer state as the uninterrupted run's last checkpoint.
    model = lmhub.load_model(Path(config.output_dir) / "checkpoints" / "step_6", device="cpu")
    optimizer = build_optimizer(
        list(model.parameters()), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8
    )
    ref = lmhub.load_model(runs / "one" / "final", device="cpu")
    ref_optimizer = build_optimizer(
        list(ref.parameters()), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8
    )
    load_any_train_checkpoint(
        runs / "two" / "checkpoints" / "step_6", model=ref, optimizer=ref_optimizer, device="cpu"
    )
    load_any_train_checkpoint(
        Path(config.output_dir) / "checkpoints" / "step_6",
        model=model,
        optimizer=optimizer,
        device="cpu",
    )
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert (p - q).abs().max().item() < 1e-5, name
    for mine, theirs in zip(optimizer.state.values(), ref_optimizer.state.values()):
        assert int(mine["step"]) == int(theirs["step"]) == STEPS
        assert (mine["exp_avg"] - theirs["exp_avg"]).abs().max().item() < 1e-5


@pytest.mark.slow
def test_resume_one_process_on_two_ranks(runs: Path) -> None:
    config = _config(runs, "one_to_two", resume=str(runs / "one" / "checkpoints" / "step_3"))
    torchrun_train(config, 2)
    got = _losses(Path(config.output_dir))
    assert sorted(got) == [4, 5, 6]
    _assert_close(got, _losses(runs / "one"), range(4, STEPS + 1))


@pytest.mark.slow
def test_consolidate_a_run_card(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMHUB_CARDS_DIR", str(runs / "cards"))  # where the run registered
    monkeypatch.setattr(store, "_default_store", None)
    out = tmp_path / "hf"
    assert main(["checkpoint", "consolidate", "two@step_6", str(out)]) == 0
    got = lmhub.load_model(out, device="cpu")
    want = lmhub.load_model(runs / "two" / "final", device="cpu")  # gathered by rank 0
    for (name, p), q in zip(got.state_dict().items(), want.state_dict().values()):
        assert torch.equal(p, q), name
    assert (out / "tokenizer.json").is_file()
    with pytest.raises(ModelCheckpointError, match="not a sharded training checkpoint"):
        consolidate_checkpoint(runs / "one" / "checkpoints" / "step_3", tmp_path / "x")


def _kill_in_second_save(root: str) -> None:
    gangs = setup_gangs()
    hub = lmhub.get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", {"num_layers": 1})
    torch.manual_seed(0)
    model = hub.create_new_model(config, gangs=gangs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def save(step: int, before_publish: object = None) -> None:
        state = TrainState(step=step, tokens_seen=step, data_position={}, rng=rng_state())
        save_sharded_train_checkpoint(
            Path(root), model=model, family_name="llama", tokenizer=None, optimizer=optimizer,
            state=state, keep_last=0, gangs=gangs, before_publish=before_publish,  # type: ignore[arg-type]
        )  # fmt: skip

    save(1)
    whole = full_state_dict(model)  # what step 1 holds, for the parent to compare
    if gangs.root.rank == 0:
        torch.save(whole, Path(root) / "step_1.pt")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    # Rank 0 dies once every rank's shards of step 2 are staged, before the rename.
    save(2, before_publish=lambda staging: os.kill(os.getpid(), signal.SIGKILL))


@pytest.mark.slow
def test_a_killed_sharded_save_leaves_the_previous_step(tmp_path: Path) -> None:
    with pytest.raises(mp.ProcessExitedException):
        launch(_kill_in_second_save, str(tmp_path))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_1"]
    assert find_resume_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_1"
    assert list((tmp_path / "checkpoints").glob(".step_2.tmp*"))  # staged, never published
    hub = lmhub.get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", {"num_layers": 1})
    want = torch.load(tmp_path / "step_1.pt", weights_only=True)
    model = hub.create_new_model(config, device="cpu")
    state = load_any_train_checkpoint(
        tmp_path / "checkpoints" / "step_1",
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        device=torch.device("cpu"),
    )
    assert state.step == 1
    for name, p in model.state_dict().items():
        assert torch.equal(p, want[name]), name
