"""What a run leaves behind besides metrics: its cards, and its progress output."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console

import lmhub
from lmhub.assets.store import user_cards_dirs
from lmhub.train.progress import TrainProgress
from lmhub.train.run import train
from tests.train.helpers import tiny_config, write_text


def test_run_cards_file_loads_each_checkpoint(tmp_path: Path) -> None:
    cards = {"checkpoint.every_steps": 2, "checkpoint.register_cards": False}
    config = tiny_config(tmp_path, write_text(tmp_path), max_steps=4, run_name="mine", **cards)
    final = train(config)
    assert not any(user_cards_dirs()[0].glob("runs/*.yaml"))  # registration was off
    lmhub.register_cards(tmp_path / "run" / "cards.yaml")
    last = lmhub.load_model("mine@last")
    step_2 = lmhub.load_model("mine@step_2")
    exported = lmhub.load_model(final)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(last(ids), exported(ids))  # @last is the final model
        assert not torch.equal(step_2(ids), exported(ids))


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    row = {"step": 3, "loss": 1.5, "lr": 0.01, "tokens_per_s": 100.0}
    term = io.StringIO()
    bar = TrainProgress(10, console=Console(file=term, force_terminal=True, width=100))
    bar.start(0)
    bar.update(3, row)
    bar.stop()
    assert bar.mode == "bar" and "step 3/10" in term.getvalue()

    pipe = io.StringIO()
    plain = TrainProgress(10, console=Console(file=pipe, force_terminal=False))
    plain.update(3, row)
    plain.update(4)  # a step without a logged row prints nothing
    plain.update(5, {**row, "split": "valid", "step": 5})
    assert plain.mode == "plain"
    assert pipe.getvalue().splitlines() == [
        "step 3/10  loss 1.5  lr 0.01  tokens_per_s 100",
        "valid step 5/10  loss 1.5  lr 0.01  tokens_per_s 100",
    ]
