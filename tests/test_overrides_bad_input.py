"""Bad overrides: every one is a ConfigError naming the override and the field, never a raw
YAML or Python exception, a hang or a message the size of the input. A hypothesis fuzz applies
thousands of random override lists (real and bogus field paths, YAML-ish text with tags, anchors,
dates and deep nesting, Python values of every kind) to every family's config."""

from __future__ import annotations

import dataclasses
import datetime
import string
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmhub
from lmhub.config import apply_overrides, from_dict, from_json, from_yaml, parse_override
from lmhub.errors import ConfigError, LmhubError
from lmhub.models.llama import LlamaConfig
from lmhub.plain_data import MAX_DEPTH

ALIAS_BOMB = (
    "[&l0 [x, x, x, x, x, x, x, x, x], "
    + ", ".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9))
    + "]"
)


def _deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _config_error(overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        apply_overrides(LlamaConfig(), overrides)
    message = str(info.value)
    assert len(message) < 1000 and "\n" not in message
    return info.value


# --- override strings: YAML that cannot be used --------------------------------------------------


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("model_dim=!!float abc", "YAML cannot build one of its values"),
        ("rope_theta=!!timestamp abc", "YAML cannot build"),
        ("bos_token_id=!!bool maybe", "YAML cannot build"),
        ("bos_token_id=!!int 0x", "YAML cannot build"),
        ("attn_impl=!!python/object/apply:os.system [echo]", "not valid YAML"),
        ("attn_impl=!!python/name:os.system", "not valid YAML"),
        ("attn_impl=!!binary abc", "not valid YAML"),  # bad base64
        ("attn_impl=2024-13-45", "month must be in 1..12"),
        ("attn_impl=2001-12-14 21:59:43.10 -99:00", "YAML cannot build"),
        ("model_dim=" + "1" * 5000, "4300 digits"),
        ("model_dim=" + "9" * 100, "integer wider than 256 bits"),
        ("eos_token_id=" + "[" * 3000 + "]" * 3000, f"more than {MAX_DEPTH} levels deep"),
        ("rope_scaling=" + "{a: " * 3000 + "1" + "}" * 3000, "levels deep"),
        ("eos_token_id=&a [*a]", "contains itself"),
        ("eos_token_id=" + ALIAS_BOMB, "more than 100,000 values"),
        ("attn_impl=a\x1bb", "not valid YAML"),  # control characters
        ("attn_impl=[unclosed", "not valid YAML"),
        ("model_dim=1\n---\n2", "several YAML documents"),
    ],
)
def test_unusable_yaml_names_override_and_field(override: str, reason: str) -> None:
    error = _config_error([override])
    field = override.partition("=")[0]
    assert error.field == field and f"'{field}'" in str(error)
    assert reason in str(error)
    assert repr(override[:20])[:-1] in str(error)  # the override itself, shortened


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("attn_impl=!!binary aGk=", "attn_impl"),  # bytes
        ("eos_token_id=!!set {1, 2}", "eos_token_id"),
        ("eos_token_id=!!omap [a: 1]", "eos_token_id"),
        ("attn_impl=2024-01-02", "attn_impl"),  # a valid date is not text
        ("rope_scaling={1: 2}", "rope_scaling.1"),
        ("rope_scaling={null: 2}", "rope_scaling.None"),
        ("eos_token_id=[1, a]", "eos_token_id"),
        ("rope_scaling.kind=[linear]", "rope_scaling.kind"),
        ("model_dim=.nan", "model_dim"),
        ("model_dim=1e400", "model_dim"),
    ],
)
def test_values_of_the_wrong_kind(override: str, field: str) -> None:
    assert _config_error([override]).field == field


# --- field paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("__class__.x=1", "__class__"),
        ("__class__=1", "__class__"),
        ("__dict__.model_dim=1", "__dict__"),
        ("validate.x=1", "validate"),
        ("rope_scaling.__class__.x=1", "rope_scaling.__class__"),
        ("rope_scaling.__init__=1", "rope_scaling.__init__"),
        ("model_dim.real=1", "model_dim.real"),
        ("a..b=1", "a"),
        ("model_dim.=1", "model_dim."),
        (".model_dim=1", ""),
    ],
)
def test_dunder_and_odd_field_paths(override: str, field: str) -> None:
    error = _config_error([override])
    assert error.field == field
    assert LlamaConfig().model_dim == 4096  # nothing was changed on the class


@pytest.mark.parametrize("override", ["=1", "model_dim", "", "  =x"])
def test_not_field_equals_value(override: str) -> None:
    assert "FIELD=VALUE" in str(_config_error([override]))


# --- Python values and containers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({1: 2}, r"key 1 \(of type int\) under '\(top\)' is not a field name"),
        ({None: 2}, "key None"),
        ({"rope_scaling": {1: 2}}, r"key 1 \(of type int\) under 'rope_scaling.'"),
        ({"rope_scaling": {("a",): 2}}, "not a field name"),
        ({"eos_token_id": _deep_list(3000)}, "levels deep"),
        ({"eos_token_id": [10**5000]}, "integer wider than 256 bits"),
        ({"model_dim": b"12"}, "does not fit the field 'model_dim'"),
        ({"attn_impl": datetime.date(2024, 1, 1)}, "does not fit the field 'attn_impl'"),
        ([1], "neither a FIELD=VALUE string nor a .field, value. pair"),
        ([None], "neither"),
        ([b"model_dim=1"], "neither"),
        ([("model_dim",)], "neither"),
        ([("model_dim", 1, 2)], "neither"),
        ([(1, 2)], "neither"),
        (5, "not a mapping or a list"),
        ([("eos_token_id", _deep_list(3000))], "levels deep"),
    ],
)
def test_python_values_and_containers(overrides: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        apply_overrides(LlamaConfig(), overrides)
    assert len(str(info.value)) < 1000


def test_self_containing_values_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    _config_error({"eos_token_id": loop})
    mapping: dict[str, Any] = {}
    mapping["rope_scaling"] = mapping
    _config_error(mapping)


def test_huge_values_are_shown_briefly() -> None:
    error = _config_error({"model_dim": list(range(100_000))[:50_000]})
    assert "..." in str(error) and error.field == "model_dim"


def test_apply_overrides_needs_a_config_instance() -> None:
    with pytest.raises(ConfigError, match="config dataclass instance"):
        apply_overrides(LlamaConfig, ["model_dim=1"])  # the class, not an instance


def test_parse_override_rejects_non_strings() -> None:
    with pytest.raises(ConfigError, match="not a FIELD=VALUE string"):
        parse_override(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reader", "text"),
    [
        (from_yaml, "model_dim: !!float abc"),
        (from_yaml, "[" * 3000 + "]" * 3000),
        (from_json, '{"model_dim": '),
        (from_json, "[" * 100_000 + "]" * 100_000),
        (from_json, '{"1": 2}'),
    ],
)
def test_from_yaml_and_json_errors(reader: Any, text: str) -> None:
    with pytest.raises(ConfigError):
        reader(LlamaConfig, text)


def test_from_dict_rejects_non_text_keys() -> None:
    with pytest.raises(ConfigError, match="not a field name"):
        from_dict(LlamaConfig, {1: 2})


def test_quoted_values_still_pass_as_text() -> None:
    cfg = apply_overrides(LlamaConfig(), ["attn_impl='2024-13-45'", 'attn_impl="!!float abc"'])
    assert cfg.attn_impl == "!!float abc"


# --- fuzz ----------------------------------------------------------------------------------------

CONFIGS = [
    lmhub.get_model_hub(family).get_arch_config(lmhub.get_model_hub(family).get_archs()[0])
    for family in lmhub.list_families()
]


def _paths(config: Any, prefix: str = "") -> list[str]:
    """Every field path of a config, nested configs included (created from their defaults)."""
    out = []
    for f in dataclasses.fields(config):
        out.append(prefix + f.name)
        nested = getattr(config, f.name)
        if nested is None:
            nested = next(
                (
                    t()
                    for t in typing.get_args(typing.get_type_hints(type(config))[f.name])
                    if dataclasses.is_dataclass(t)
                ),
                None,
            )
        if dataclasses.is_dataclass(nested):
            out += _paths(nested, f"{prefix}{f.name}.")
    return out


REAL_PATHS = sorted({path for config in CONFIGS for path in _paths(config)})
BOGUS_PATHS = [
    "__class__",
    "__class__.x",
    "__dict__",
    "validate",
    "rope_scaling.__class__",
    "model_dim.real",
    "a..b",
    "",
    ".",
    "model_dmi",
    "rope_scaling.nope",
    "eos_token_id.x",
]
paths = st.one_of(
    st.sampled_from(REAL_PATHS),
    st.sampled_from(BOGUS_PATHS),
    st.text(alphabet=string.ascii_letters + "._=", max_size=12),
)

YAML_FRAGMENTS = [
    "!!float ",
    "!!int ",
    "!!bool ",
    "!!str ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/name:os.system ",
    "!!python/object/apply:os.getcwd []",
    "&a ",
    "*a",
    "<<: *a",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "- ",
    "? ",
    "'",
    '"',
    "---",
    "\n",
    "2024-13-45",
    "2024-02-30",
    "2001-12-14 21:59:43.10 -5",
    "12:30:00",
    "1" * 60,
    "1" * 5000,
    "0x",
    "0o17",
    "1_0",
    "1e400",
    ".nan",
    "-.inf",
    "null",
    "~",
    "true",
    "yes",
    "abc",
    "linear",
    "8",
    "1.5",
    "\x00",
    "\x1b",
    "\t",
    "#",
    "|",
    "%",
    "@",
    "`",
]
yaml_text = st.one_of(
    st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=12).map("".join),
    st.integers(0, 150).map(lambda n: "[" * n + "]" * n),  # 3000 deep: unit tests above
    st.integers(0, 150).map(lambda n: "{a: " * n + "1" + "}" * n),
    st.just(ALIAS_BOMB),
    st.text(max_size=20),
)

scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**6000), max_value=10**6000),
    st.floats(),
    st.text(max_size=10),
    st.binary(max_size=8),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["linear", "sdpa", 8, 2.5]),
)
python_values = st.one_of(
    st.recursive(
        scalar_values,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.lists(inner, max_size=4).map(tuple)
            | st.frozensets(st.integers(), max_size=3)
            | st.dictionaries(
                st.one_of(st.text(max_size=8), st.integers(), st.none()), inner, max_size=4
            )
        ),
        max_leaves=12,
    ),
    st.integers(0, 300).map(_deep_list),  # 3000: unit tests above
)

override_entries = st.one_of(
    st.tuples(paths, yaml_text).map(lambda p: f"{p[0]}={p[1]}"),
    st.tuples(paths, python_values),
    st.one_of(st.none(), st.integers(), st.binary(max_size=4), st.tuples(paths)),
)
override_lists = st.one_of(
    st.lists(override_entries, max_size=4),
    st.dictionaries(st.one_of(paths, st.integers()), python_values, max_size=4),
    st.dictionaries(paths, st.dictionaries(paths, python_values, max_size=3), max_size=3),
    st.tuples(paths, yaml_text).map(lambda p: f"{p[0]}={p[1]}"),
)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(range(len(CONFIGS))), st.lists(override_lists, min_size=1, max_size=4))
def test_fuzz_overrides_succeed_or_raise_config_errors(index: int, lists: list[Any]) -> None:
    # About 2,500 override lists in all, each applied on its own.
    for overrides in lists:
        try:
            apply_overrides(CONFIGS[index], overrides)
        except ConfigError as exc:
            assert isinstance(exc, LmhubError) and len(str(exc)) < 2000
