"""`train_valid_split`: deterministic per seed, disjoint, covering every example."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmhub.data.split import train_valid_split
from lmhub.errors import DataError


@given(st.integers(2, 500), st.floats(0.01, 0.99), st.integers(0, 2**32 - 1))
def test_split_is_a_seeded_partition(n: int, fraction: float, seed: int) -> None:
    try:
        train, valid = train_valid_split(n, valid_fraction=fraction, seed=seed)
    except DataError:
        assert max(1, round(fraction * n)) >= n  # only when nothing would be left to train on
        return
    assert len(valid) == max(1, round(fraction * n))
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(n))
    assert (np.diff(train) > 0).all() and (np.diff(valid) > 0).all()
    again = train_valid_split(n, valid_fraction=fraction, seed=seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], valid)


def test_seeds_give_different_splits() -> None:
    a = train_valid_split(100, valid_fraction=0.1, seed=0)[1]
    b = train_valid_split(100, valid_fraction=0.1, seed=1)[1]
    assert not np.array_equal(a, b)
    assert a.tolist() == train_valid_split(100, valid_fraction=0.1, seed=0)[1].tolist()


@pytest.mark.parametrize(("n", "fraction"), [(1, 0.5), (10, 0.0), (10, 1.0), (3, 0.9)])
def test_impossible_splits_are_clear_errors(n: int, fraction: float) -> None:
    with pytest.raises(DataError, match="validation"):
        train_valid_split(n, valid_fraction=fraction)
