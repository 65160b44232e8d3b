"""Exact resume: a run killed with SIGKILL between checkpoints and resumed logs bit-equal losses
to an uninterrupted run; a run killed while saving leaves the last complete checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lmhub
from lmhub.config import apply_overrides, to_yaml
from lmhub.errors import ConfigError, ModelCheckpointError
from lmhub.train.config import TrainConfig
from lmhub.train.resume import find_resume_checkpoint, list_checkpoints
from lmhub.train.run import train
from tests.train.helpers import metric_rows, tiny_config, write_text

REPO = Path(__file__).resolve().parents[2]

# Runs a config in a fresh interpreter; a callback or a save hook kills it with SIGKILL.
_CHILD = """
import os, signal, sys
from lmhub.config import from_yaml
from lmhub.train import trainer as trainer_module
from lmhub.train.config import TrainConfig
from lmhub.train.run import train

config = from_yaml(TrainConfig, open(sys.argv[1]).read())
kill_step, kill_in_save = int(sys.argv[2]), sys.argv[3] == "save"

def kill(*_):
    os.kill(os.getpid(), signal.SIGKILL)

def on_step(trainer, row):
    if not kill_in_save and row["step"] == kill_step:
        kill()

save = trainer_module.save_train_checkpoint
def save_then_die(output_dir, *, state, **kw):
    if kill_in_save and state.step == kill_step:
        kw["before_publish"] = kill  # every file staged, the rename not yet done
    return save(output_dir, state=state, **kw)
trainer_module.save_train_checkpoint = save_then_die
train(config, callbacks=[on_step])
"""


def _run_killed(tmp_path: Path, config: TrainConfig, step: int, where: str) -> None:
    config_file = tmp_path / f"{Path(config.output_dir).name}.yaml"
    config_file.write_text(to_yaml(config))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(config_file), str(step), where],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_text(tmp_path)


def test_resume_after_sigkill_logs_bit_equal_losses(tmp_path: Path, data: Path) -> None:
    settings = {
        "max_steps": 7,
        "checkpoint.every_steps": 2,
        "checkpoint.keep_last": 2,
        "model_config.dropout_p": 0.1,
    }  # fmt: skip  (dropout: the RNG must be restored)
    whole = tiny_config(tmp_path, data, output_dir=str(tmp_path / "whole"), **settings)
    train(whole)
    expected = metric_rows(tmp_path / "whole")

    cut = tiny_config(tmp_path, data, output_dir=str(tmp_path / "cut"), **settings)
    _run_killed(tmp_path, cut, step=5, where="step")  # after step 5, last checkpoint at 4
    logged = metric_rows(tmp_path / "cut")
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    assert find_resume_checkpoint(tmp_path / "cut").name == "step_4"

    train(cut)  # resume: auto
    resumed = metric_rows(tmp_path / "cut")
    assert [r["step"] for r in resumed] == list(range(1, 8))
    for ours, theirs in zip(resumed, expected):  # bit-equal: ==, not approx
        assert (ours["loss"], ours["grad_norm"], ours["lr"], ours["tokens_seen"]) == (
            theirs["loss"], theirs["grad_norm"], theirs["lr"], theirs["tokens_seen"],
        )  # fmt: skip
    assert [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step_6", "step_7"]


def test_kill_during_save_leaves_the_last_complete_checkpoint(tmp_path: Path, data: Path) -> None:
    config = tiny_config(
        tmp_path, data, max_steps=4, output_dir=str(tmp_path / "run"),
        **{"checkpoint.every_steps": 2},
    )  # fmt: skip
    _run_killed(tmp_path, config, step=4, where="save")
    root = tmp_path / "run" / "checkpoints"
    assert (root / "latest").read_text().strip() == "step_2"
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_2"]
    assert any(p.name.startswith(".step_4") for p in root.iterdir())  # the staging left behind
    model = lmhub.load_model(root / "step_2")
    assert model.config.model_dim == 32

    train(config)  # resumes from step 2, clears the staging, finishes
    assert [r["step"] for r in metric_rows(tmp_path / "run")] == [1, 2, 3, 4]
    assert not any(p.name.startswith(".") for p in root.iterdir())
    assert find_resume_checkpoint(tmp_path / "run").name == "step_4"


def test_resume_from_a_named_checkpoint_and_never(tmp_path: Path, data: Path) -> None:
    config = tiny_config(tmp_path, data, max_steps=4, **{"checkpoint.every_steps": 2,
                                                         "checkpoint.keep_last": 0})  # fmt: skip
    train(config)
    expected = metric_rows(tmp_path / "run")
    step_2 = tmp_path / "run" / "checkpoints" / "step_2"
    train(apply_overrides(config, [f"resume={step_2}"]))  # steps 3 and 4 again, from step 2
    assert metric_rows(tmp_path / "run") == [
        {**row, "tokens_per_s": ours["tokens_per_s"]}
        for row, ours in zip(expected, metric_rows(tmp_path / "run"))
    ]
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(apply_overrides(config, ["resume=never"]))
    with pytest.raises(ModelCheckpointError, match="does not exist"):
        train(apply_overrides(config, [f"resume={tmp_path / 'nowhere'}"]))
