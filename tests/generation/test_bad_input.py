"""Bad input to generation raises GenerationError (an LmhubError), never a raw Python error."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmhub
from lmhub.errors import GenerationError, LmhubError
from lmhub.generation import GenerationOptions
from lmhub.models.llama.model import LlamaModel

VOCAB = 259  # llama_tiny's byte vocabulary


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    hub = lmhub.get_model_hub("llama")
    torch.manual_seed(0)
    return hub.create_new_model(hub.get_arch_config("llama_tiny")).eval()


@pytest.mark.parametrize("bad", [-1, VOCAB, 10**6])
def test_token_ids_outside_the_vocabulary(model: LlamaModel, bad: int) -> None:
    ids = torch.tensor([[1, 2, bad]])
    with pytest.raises(GenerationError, match=f"token id {bad}, outside the model's vocabulary"):
        lmhub.generate(model, ids, max_new_tokens=2)


@pytest.mark.parametrize(
    "ids", [torch.zeros(0, 3, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long)]
)
def test_an_empty_batch_or_prompt(model: LlamaModel, ids: torch.Tensor) -> None:
    with pytest.raises(GenerationError, match="at least one row and one prompt token"):
        lmhub.generate(model, ids, max_new_tokens=2)


def test_float_ids(model: LlamaModel) -> None:
    with pytest.raises(GenerationError, match="must be integers"):
        lmhub.generate(model, torch.ones(1, 3), max_new_tokens=2)


def test_a_model_on_the_meta_device() -> None:
    hub = lmhub.get_model_hub("llama")
    meta = hub.create_new_model(hub.get_arch_config("llama_tiny"), device="meta")
    with pytest.raises(GenerationError, match="meta device"):
        lmhub.generate(meta, torch.tensor([[1, 2]]), max_new_tokens=2)


def test_a_length_that_cannot_fit_is_refused_before_allocating(model: LlamaModel) -> None:
    with pytest.raises(GenerationError, match="Lower max_new_tokens") as info:
        lmhub.generate(model, torch.tensor([[1, 2]]), max_new_tokens=10**12)
    assert info.value.field == "max_new_tokens"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", "0.7"),
        ("temperature", -1.0),
        ("temperature", float("nan")),
        ("temperature", None),
        ("top_k", 2.5),
        ("top_k", 0),
        ("top_k", True),
        ("top_p", 1.5),
        ("top_p", 0.0),
        ("top_p", "0.9"),
        ("repetition_penalty", 0),
        ("repetition_penalty", [1.2]),
        ("max_new_tokens", 3.0),
        ("max_new_tokens", -1),
        ("max_new_tokens", "5"),
        ("eos_token_id", -2),
        ("eos_token_id", "2"),
        ("eos_token_id", [1, "x"]),
        ("eos_token_id", 2**70),
        ("pad_token_id", 1.0),
        ("cache", "paged"),
        ("cache", ["static"]),
        ("fused_weights", "yes"),
        ("stop", [[]]),
        ("stop", 3.5),
    ],
)
def test_wrong_types_and_ranges_name_the_field(model: LlamaModel, field: str, value: Any) -> None:
    settings_ = {"max_new_tokens": 2, field: value}
    with pytest.raises(GenerationError) as info:
        lmhub.generate(model, torch.tensor([[1, 2]]), **settings_)
    assert info.value.field == field
    assert field in str(info.value)


def test_options_are_frozen_and_normalised() -> None:
    options = GenerationOptions(max_new_tokens=4, eos_token_id=[2, torch.tensor(3)], top_p=1)
    assert options.eos_token_id == (2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.temperature = 1.0  # type: ignore[misc]
    assert lmhub.GenerationOptions is GenerationOptions


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.one_of(st.integers(-3, 300), st.text(max_size=2)), max_size=3),
    st.sampled_from(["static", "dynamic", "greedy"]),
)
_FIELDS = [f.name for f in dataclasses.fields(GenerationOptions) if f.name != "max_new_tokens"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=4),
    # Real lengths stay small (a valid huge one would just run long); the rest are wrong types.
    max_new_tokens=st.one_of(st.integers(-2, 3), _values.filter(lambda v: not isinstance(v, int))),
)
def test_fuzzed_keywords_raise_only_lmhub_errors(
    model: LlamaModel, values: dict[str, Any], max_new_tokens: Any
) -> None:
    try:
        out = lmhub.generate(
            model, torch.tensor([[1, 2, 3]]), max_new_tokens=max_new_tokens, **values
        )
    except LmhubError:
        return
    assert out.shape[0] == 1 and 3 <= out.shape[1] <= 3 + max_new_tokens


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attention_mask": [[1, 1]]}, "attention_mask"),
        ({"attention_mask": torch.ones(1, 3)}, "attention_mask"),
        ({"generator": 7}, "generator"),
    ],
)
def test_wrong_mask_and_generator(model: LlamaModel, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(GenerationError) as info:
        lmhub.generate(model, torch.tensor([[1, 2]]), max_new_tokens=2, **kwargs)
    assert info.value.field == field
