"""``lmhub scaffold lm-type NAME``: the generated package passes the shared LM-type checks as
written (its own tests, run by pytest in a fresh interpreter) and trains through ``lmhub train``
as ``lm_type=NAME.lm_type``; bad names are one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmhub.cli.main import main
from lmhub.lm.registry import get_lm_type
from lmhub.train.run import train
from tests.train.helpers import metric_rows, tiny_config, write_pairs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scaffolded_lm_type_passes_its_tests_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scaffold", "lm-type", "toy_lm", "--out", str(tmp_path)]) == 0
    assert "toy_lm.lm_type" in capsys.readouterr().out
    package = tmp_path / "toy_lm"
    expected = {"__init__.py", "types.py", "collators.py", "loss.py", "predictor.py",
                "metrics.py", "lm_type.py", "toy_lm_tiny.yaml", "tests"}  # fmt: skip
    assert {p.name for p in package.iterdir()} == expected
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{tmp_path}",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout

    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_lm_type("toy_lm.lm_type").name == "toy_lm"
    config = tiny_config(tmp_path, write_pairs(tmp_path), lm_type="toy_lm.lm_type",
                         debug="smoke", **{"data.valid_fraction": 0.5})  # fmt: skip
    train(config)
    rows = metric_rows(Path(config.output_dir), "valid")
    assert {r["loader"] for r in rows} == {"lm", "prediction"}


@pytest.mark.parametrize(("name", "message"), [("Bad-Name", "lower-case Python identifier"),
                                               ("taken", "already exists")])  # fmt: skip
def test_bad_names_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    (tmp_path / "taken").mkdir()
    assert main(["scaffold", "lm-type", name, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
