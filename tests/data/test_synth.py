"""`lmhub.data.synth` and `lmhub data synth`: the synthetic seq2seq tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.cli.main import main
from lmhub.data.synth import synth_examples
from lmhub.errors import ConfigError


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["reverse", "sort", "add"]),
    st.integers(1, 12),
    st.booleans(),
    st.integers(0, 10**6),
)
def test_every_example_is_a_correct_answer(
    task: str, digits: int, variable: bool, seed: int
) -> None:
    examples = synth_examples(task, 20, digits=digits, variable_length=variable, seed=seed)
    assert examples == synth_examples(task, 20, digits=digits, variable_length=variable, seed=seed)
    for ex in examples:
        prompt, target = ex["prompt"], ex["target"]
        if task == "reverse":
            assert target == prompt[::-1]
        elif task == "sort":
            assert target == "".join(sorted(prompt))
        else:
            a, b = prompt.split("+")
            assert int(target) == int(a) + int(b) and len(a) <= digits and len(b) <= digits
        if task != "add":
            assert prompt.isdigit()
            assert len(prompt) == digits if not variable else 1 <= len(prompt) <= digits


def test_fixed_length_examples_differ_and_seeds_differ() -> None:
    a = synth_examples("reverse", 50, digits=8, seed=0)
    b = synth_examples("reverse", 50, digits=8, seed=1)
    assert len({e["prompt"] for e in a}) == 50 and a != b


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"task": "rotate"}, "task"), ({"n": 0}, "n"), ({"digits": 0}, "digits")],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"task": "reverse", "n": 3, **kwargs}
    with pytest.raises(ConfigError) as info:
        synth_examples(args.pop("task"), args.pop("n"), **args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_cli_writes_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sort.jsonl"
    code = main(["data", "synth", "sort", "--n", "5", "--digits", "4", "--out", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == synth_examples("sort", 5, digits=4)
    assert "Wrote 5 'sort' examples" in capsys.readouterr().out


def test_cli_unknown_task_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["data", "synth", "rotate", "--out", str(tmp_path / "x.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "rotate" in err and "\n" not in err
