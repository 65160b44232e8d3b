"""Sampling filters on hand-made logits, checked by hand and against transformers' processors."""

from __future__ import annotations

import pytest
import torch

import lmhub
from lmhub.errors import GenerationError
from lmhub.generation import (
    apply_repetition_penalty,
    next_token,
    seen_tokens,
    top_k_filter,
    top_p_filter,
)

INF = float("inf")


def test_top_k_keeps_the_k_largest_and_ties() -> None:
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0], [5.0, 5.0, 1.0, 0.0]])
    assert top_k_filter(logits, 2).tolist() == [[-INF, 4.0, 3.0, -INF], [5.0, 5.0, -INF, -INF]]
    assert torch.equal(top_k_filter(logits, 10), logits)


def test_top_p_keeps_the_smallest_nucleus() -> None:
    # probabilities 0.5, 0.3, 0.15, 0.05
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda p: (top_p_filter(logits, p) > -INF).tolist()[0]  # noqa: E731
    assert kept(0.5) == [True, False, False, False]
    assert kept(0.6) == [True, True, False, False]
    assert kept(0.8) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(0.01) == [True, False, False, False]  # the top token always stays
    assert kept(1.0) == [True, True, True, True]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert (top_p_filter(shuffled, 0.6) > -INF).tolist()[0] == [False, True, False, True]


def test_filters_match_transformers() -> None:
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(4, 50) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    assert torch.equal(top_k_filter(logits, 7), TopKLogitsWarper(7)(ids, logits.clone()))
    for p in (0.3, 0.75, 0.95):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits.clone()))


def test_repetition_penalty_matches_transformers_definition() -> None:
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5, -0.5]])
    ids = torch.tensor([[0, 1, 1, 4]])
    seen = seen_tokens(ids, 5)
    assert seen.tolist() == [[True, True, False, False, True]]
    got = apply_repetition_penalty(logits, seen, 2.0)
    assert got.tolist() == [[1.0, -4.0, 1.0, 0.5, -1.0]]
    want = RepetitionPenaltyLogitsProcessor(2.0)(ids, logits.clone())
    assert torch.equal(got, want)


def test_padding_does_not_count_as_seen() -> None:
    ids = torch.tensor([[3, 3, 1], [0, 2, 2]])
    mask = torch.tensor([[0, 0, 1], [1, 1, 1]])
    assert seen_tokens(ids, 4, mask).tolist() == [
        [False, True, False, False],
        [True, False, True, False],
    ]


def test_greedy_and_seeded_sampling() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 20)
    assert torch.equal(next_token(logits), logits.argmax(-1))
    assert torch.equal(next_token(logits, temperature=1.5, top_k=1), logits.argmax(-1))
    draw = lambda seed: next_token(  # noqa: E731
        logits, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(seed)
    )
    assert torch.equal(draw(1), draw(1))
    draws = torch.stack([draw(s) for s in range(20)])
    assert len(draws.unique()) > 3  # it does sample


def test_generate_sampling_is_reproducible_and_top_k_1_is_greedy() -> None:
    hub = lmhub.get_model_hub("llama")
    torch.manual_seed(0)
    model = hub.create_new_model(hub.get_arch_config("llama_tiny")).eval()
    ids = torch.randint(0, 256, (2, 5))
    greedy = lmhub.generate(model, ids, max_new_tokens=8)
    assert torch.equal(
        lmhub.generate(model, ids, max_new_tokens=8, top_k=1, temperature=0.7), greedy
    )
    run = lambda seed: lmhub.generate(  # noqa: E731
        model,
        ids,
        max_new_tokens=8,
        temperature=1.0,
        top_k=50,
        top_p=0.95,
        repetition_penalty=1.3,
        generator=torch.Generator().manual_seed(seed),
    )
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"cache": "paged"}, "cache"),
    ],
)
def test_bad_settings_raise_generation_errors(kwargs: dict[str, object], field: str) -> None:
    model = torch.nn.Linear(1, 1)
    args: dict[str, object] = {"max_new_tokens": 4, **kwargs}
    with pytest.raises(GenerationError) as info:
        lmhub.generate(model, torch.tensor([[1]]), **args)  # type: ignore[arg-type]
    assert info.value.field == field
