"""`ResumableSampler`: a position saved at any point and restored continues exactly."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.data.sampler import ResumableSampler
from lmhub.errors import DataError


def take(sampler: ResumableSampler, n: int) -> list[int]:
    """The next ``n`` indices, across epochs, as a training loop would draw them."""
    out: list[int] = []
    while len(out) < n:
        out += list(itertools.islice(iter(sampler), n - len(out)))
        if len(out) < n and sampler.index == sampler.num_items:
            list(iter(sampler))  # finish the epoch's generator: moves to the next epoch
    return out


def test_each_epoch_is_a_seeded_permutation() -> None:
    sampler = ResumableSampler(10, seed=3)
    epochs = [list(sampler) for _ in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1]  # a new order each epoch
    assert list(ResumableSampler(10, seed=3)) == epochs[0]
    assert list(ResumableSampler(10, seed=4)) != epochs[0]
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.integers(0, 40), st.integers(0, 2**31))
def test_resume_at_any_point_continues_exactly(n: int, stop: int, seed: int) -> None:
    uninterrupted = ResumableSampler(n, seed=seed)
    reference = [i for _ in range(4) for i in uninterrupted]
    first = ResumableSampler(n, seed=seed)
    before = take(first, min(stop, len(reference)))
    state = first.state_dict()
    resumed = ResumableSampler(n, seed=seed)
    resumed.load_state_dict(state)
    after = take(resumed, len(reference) - len(before))
    assert before + after == reference


def test_resume_through_a_dataloader() -> None:
    data = list(range(11))
    sampler = ResumableSampler(len(data), seed=7)
    loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=sampler)
    reference = [b.tolist() for _ in range(2) for b in loader]

    sampler = ResumableSampler(len(data), seed=7)
    loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=sampler)
    it = iter(loader)
    seen = [next(it).tolist() for _ in range(2)]
    state = sampler.state_dict()  # no workers: the sampler is exactly at the consumed batches
    assert state["index"] == 6

    sampler = ResumableSampler(len(data), seed=7)
    sampler.load_state_dict(state)
    loader = torch.utils.data.DataLoader(data, batch_size=3, sampler=sampler)
    seen += [b.tolist() for b in loader] + [b.tolist() for b in loader]
    assert seen == reference


def test_position_after_consumed_items() -> None:
    sampler = ResumableSampler(4)
    assert sampler.position_after(9) == {"epoch": 2, "index": 1, "seed": 0, "num_items": 4}


def test_restoring_into_other_data_is_refused() -> None:
    state = ResumableSampler(10, seed=1).state_dict()
    with pytest.raises(DataError, match="num_items=10"):
        ResumableSampler(11, seed=1).load_state_dict(state)
    with pytest.raises(DataError, match="seed=1"):
        ResumableSampler(10, seed=2).load_state_dict(state)
