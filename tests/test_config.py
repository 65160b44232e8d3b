"""Config overrides and (de)serialisation, incl. property tests."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.config import (
    apply_overrides,
    from_dict,
    from_json,
    from_yaml,
    parse_override,
    to_dict,
    to_json,
    to_yaml,
)
from lmhub.errors import ConfigError
from lmhub.models.llama import LlamaConfig, llama_archs
from lmhub.nn.rope import RopeScaling


def test_overrides_from_strings_and_mapping() -> None:
    cfg = apply_overrides(
        llama_archs.get("llama3_1_8b"), ["model_dim=1024", "rope_scaling.factor=8"]
    )
    assert cfg.model_dim == 1024 and cfg.rope_scaling.factor == 8.0
    assert isinstance(cfg.rope_scaling.factor, float)
    cfg2 = apply_overrides(LlamaConfig(), {"model_dim": 1024, "rope_scaling": {"factor": 8}})
    assert cfg2.rope_scaling == RopeScaling(factor=8.0)


def test_override_returns_copy() -> None:
    base = LlamaConfig()
    apply_overrides(base, ["num_layers=2"])
    assert base.num_layers == 32


def test_nested_none_is_created_from_defaults() -> None:
    cfg = apply_overrides(LlamaConfig(), ["rope_scaling.kind=linear", "rope_scaling.factor=2"])
    assert cfg.rope_scaling.kind == "linear"


def test_null_disables_nested() -> None:
    cfg = apply_overrides(llama_archs.get("llama3_1_8b"), ["rope_scaling=null"])
    assert cfg.rope_scaling is None


def test_union_and_list_fields() -> None:
    cfg = apply_overrides(LlamaConfig(), ["eos_token_id=[128001, 128009]", "head_dim=64"])
    assert cfg.eos_token_id == [128001, 128009] and cfg.head_dim == 64
    assert apply_overrides(cfg, ["head_dim=null"]).head_dim is None


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("model_dmi=3", "model_dmi"),
        ("model_dim=abc", "model_dim"),
        ("model_dim=1.5", "model_dim"),
        ("tie_embeddings=3", "tie_embeddings"),
        ("rope_scaling.kind=cubic", "rope_scaling.kind"),
        ("rope_scaling.nope=1", "rope_scaling.nope"),
        ("model_dim.x=1", "model_dim.x"),
    ],
)
def test_bad_overrides_name_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(LlamaConfig(), [override])
    assert info.value.field == field
    assert field.split(".")[-1] in str(info.value)


def test_unknown_field_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'model_dim'"):
        apply_overrides(LlamaConfig(), ["model_dimm=3"])


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        parse_override("model_dim")


@pytest.mark.parametrize("arch", llama_archs.names())
def test_round_trips_are_exact(arch: str) -> None:
    cfg = llama_archs.get(arch)
    assert from_yaml(LlamaConfig, to_yaml(cfg)) == cfg
    assert from_json(LlamaConfig, to_json(cfg)) == cfg
    assert from_dict(LlamaConfig, to_dict(cfg)) == cfg


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="not a field of LlamaConfig"):
        from_dict(LlamaConfig, {"hidden_size": 3})


@settings(max_examples=60, deadline=None)
@given(
    model_dim=st.integers(1, 1 << 20),
    eps=st.floats(1e-12, 1.0, allow_nan=False),
    tie=st.booleans(),
    factor=st.floats(1.0, 64.0, allow_nan=False),
    impl=st.sampled_from(["eager", "sdpa"]),
)
def test_overrides_property(
    model_dim: int, eps: float, tie: bool, factor: float, impl: str
) -> None:
    items = [
        f"model_dim={model_dim}",
        f"norm_eps={eps!r}",
        f"tie_embeddings={str(tie).lower()}",
        f"rope_scaling.factor={factor!r}",
        f"attn_impl={impl}",
    ]
    cfg = apply_overrides(LlamaConfig(), items)
    assert (cfg.model_dim, cfg.norm_eps, cfg.tie_embeddings, cfg.attn_impl) == (
        model_dim,
        eps,
        tie,
        impl,
    )
    assert cfg.rope_scaling.factor == factor
    assert from_yaml(LlamaConfig, to_yaml(cfg)) == cfg
    as_mapping = apply_overrides(LlamaConfig(), dict(parse_override(i) for i in items))
    assert as_mapping == cfg


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_string_field_values_never_crash(text: str) -> None:
    # Any value either fits the str field, unchanged, or raises a ConfigError naming the field.
    override = f"attn_impl={text}"
    try:
        cfg = apply_overrides(LlamaConfig(), [override])
    except ConfigError as exc:
        assert exc.field == "attn_impl"
        return
    assert cfg.attn_impl == parse_override(override)[1]


def test_configs_are_kw_only_dataclasses_with_field_docs() -> None:
    import inspect

    assert dataclasses.is_dataclass(LlamaConfig)
    with pytest.raises(TypeError):
        LlamaConfig(4096)  # type: ignore[misc]
    source = inspect.getsource(LlamaConfig)
    for f in dataclasses.fields(LlamaConfig):
        after = source.split(f"    {f.name}:", 1)[1].splitlines()[1].strip()
        assert after.startswith('"""'), f"field {f.name} has no docstring"


def test_validate_rejects_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="num_kv_heads"):
        apply_overrides(LlamaConfig(), ["num_kv_heads=5"]).validate()
    with pytest.raises(ConfigError, match="attn_impl"):
        apply_overrides(LlamaConfig(), ["attn_impl=flash"]).validate()
