"""The LM-type registry: built-in types, registration, module paths, and one-line errors."""

from __future__ import annotations

import pytest

from lmhub.data.tokenizers import ByteTokenizer
from lmhub.errors import LmTypeError
from lmhub.lm.lm_type import LmType, special_token_ids
from lmhub.lm.registry import LM_TYPES, get_lm_type, list_lm_types, register_lm_type


def test_built_in_types_and_their_attention_modes() -> None:
    assert {"arlm", "mlm"} <= set(list_lm_types())
    assert get_lm_type("arlm").causal and not get_lm_type("mlm").causal
    assert get_lm_type("mlm").special_tokens == ("mask",)
    assert get_lm_type("lmhub.lm.mlm.lm_type") is get_lm_type("mlm")  # by module path too


def test_special_tokens_follow_the_tokenizer_vocabulary() -> None:
    assert special_token_ids(ByteTokenizer(), ("mask", "cls")) == {"mask": 259, "cls": 260}


def test_register_refuses_a_taken_name_unless_replacing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lmhub.lm.registry.LM_TYPES", dict(LM_TYPES))
    other = LmType(name="mlm", description="", causal=False, build=get_lm_type("mlm").build)
    with pytest.raises(LmTypeError, match="already registered"):
        register_lm_type(other)
    register_lm_type(other, replace=True)
    assert get_lm_type("mlm") is other


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mlmm", "Did you mean 'mlm'"),
        ("no_such_pkg.types", "cannot be imported"),
        ("lmhub.lm.metrics", "defines no LM_TYPE"),
    ],
)
def test_bad_names_say_what_to_do(name: str, message: str) -> None:
    with pytest.raises(LmTypeError, match=message) as info:
        get_lm_type(name)
    assert info.value.field == "lm_type" and "arlm" in str(info.value)
