"""The learning-rate schedules: warmup, then cosine, linear or constant down to the floor."""

from __future__ import annotations

import math

import pytest

from lmhub.train.schedules import LrSchedule


def _schedule(kind: str, **kw: float) -> LrSchedule:
    args = {"peak_lr": 2.0, "warmup_steps": 4, "total_steps": 14, "min_lr_ratio": 0.25} | kw
    return LrSchedule(kind=kind, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_warmup_is_linear_from_zero_to_peak(kind: str) -> None:
    schedule = _schedule(kind)
    assert [schedule(s) for s in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 2.0]


def test_cosine_values() -> None:
    schedule = _schedule("cosine")
    floor = 0.5
    assert schedule(9) == pytest.approx(floor + (2.0 - floor) * 0.5)  # half-way: cos = 0
    assert schedule(14) == pytest.approx(floor)
    assert schedule(100) == pytest.approx(floor)  # past the end: stays on the floor
    expected = floor + (2.0 - floor) * 0.5 * (1 + math.cos(math.pi * 3 / 10))
    assert schedule(7) == pytest.approx(expected)


def test_linear_values() -> None:
    schedule = _schedule("linear")
    assert [schedule(s) for s in (4, 9, 14)] == pytest.approx([2.0, 1.25, 0.5])


def test_constant_stays_at_peak() -> None:
    schedule = _schedule("constant")
    assert {schedule(s) for s in range(4, 30)} == {2.0}


def test_no_warmup_starts_at_peak_and_decay_is_monotone() -> None:
    schedule = _schedule("cosine", warmup_steps=0)
    values = [schedule(s) for s in range(1, 15)]
    assert values[0] < 2.0 and values[0] > 1.9
    assert values == sorted(values, reverse=True)
