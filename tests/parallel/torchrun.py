"""Running ``lmhub train`` under torchrun from a test: ``lmhub train CONFIG --nproc-per-node N``
in a subprocess (gloo on CPU, one thread per rank), with lmhub's source first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lmhub.config import to_yaml
from lmhub.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def torchrun_train(config: TrainConfig, nproc: int, *overrides: str) -> None:
    """Train ``config`` on ``nproc`` processes; raise with their output if the run fails."""
    path = Path(config.output_dir).with_suffix(".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(config), encoding="utf-8")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "lmhub", "train", str(path), *overrides]
    command += ["--nproc-per-node", str(nproc)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(
            f"torchrun exited with {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
        )
