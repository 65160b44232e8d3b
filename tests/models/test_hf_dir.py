"""config.json: one reader for both kinds of directory, and an lmhub error for every bad value.

Every bad value is an :class:`HfConfigError` whose message names the file and the config.json
key (``num_attention_heads``, not only lmhub's ``num_heads``); a fuzz over values checks that
nothing else escapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmhub
import lmhub.hf
from lmhub.errors import HfConfigError, LmhubError
from lmhub.models.hf_dir import (
    HF_KEYS,
    encode_field_name,
    parse_config_json,
    read_hf_dir,
    remote_code_attribute_map,
)
from lmhub.models.validation import SIZE_LIMITS
from lmhub.nn.rope import RopeScaling

BASE: dict[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "vocab_size": 160,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
}

HUGE = "1" + "0" * 400  # an integer JSON reads fine and float() cannot hold


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(text)
    return directory


def with_value(key: str, raw: str) -> str:
    """BASE as JSON text with ``key`` set to the raw JSON ``raw`` (NaN, huge ints, ...)."""
    return json.dumps({**BASE, key: "__BAD__"}).replace('"__BAD__"', raw)


def test_a_good_config_reads_once_into_family_config_and_dtype(tmp_path: Path) -> None:
    family, config, dtype = read_hf_dir(write(tmp_path, json.dumps(BASE)))
    assert family.name == "llama" and dtype == torch.bfloat16
    assert (config.model_dim, config.num_layers, config.num_heads, config.num_kv_heads) == (
        64,
        2,
        4,
        2,
    )
    assert (config.ffn_inner_dim, config.vocab_size, config.max_seq_len) == (96, 160, 64)
    assert config.rope_theta == 10000.0 and config.rope_scaling is None
    # transformers' defaults for what the file leaves out; null kv heads = one per query head
    assert config.init_std == 0.02 and config.pad_token_id is None
    data = {**BASE, "num_key_value_heads": None}
    assert parse_config_json(data, path=tmp_path).config.num_kv_heads == 4


@pytest.mark.parametrize(
    ("key", "raw", "expected_key"),
    [
        ("num_attention_heads", '"4"', "num_attention_heads"),
        ("num_attention_heads", "4.0", "num_attention_heads"),
        ("num_attention_heads", "null", "num_attention_heads"),
        ("num_attention_heads", "true", "num_attention_heads"),
        ("num_attention_heads", "[4]", "num_attention_heads"),
        ("num_attention_heads", "{}", "num_attention_heads"),
        ("num_hidden_layers", "1000000000000", "num_hidden_layers"),
        ("num_hidden_layers", HUGE, "num_hidden_layers"),
        ("num_hidden_layers", "-2", "num_hidden_layers"),
        ("vocab_size", "1000000000000", "vocab_size"),
        ("hidden_size", "0", "hidden_size"),
        ("intermediate_size", str(2**21), "intermediate_size"),
        ("max_position_embeddings", "null", "max_position_embeddings"),
        ("rms_norm_eps", '"abc"', "rms_norm_eps"),
        ("rms_norm_eps", '"1e-6"', "rms_norm_eps"),
        ("rms_norm_eps", "NaN", "rms_norm_eps"),
        ("rms_norm_eps", HUGE, "rms_norm_eps"),
        ("rope_theta", "Infinity", "rope_theta"),
        ("rope_theta", '"ten thousand"', "rope_theta"),
        ("rope_theta", "1.0", "rope_theta"),
        ("rope_theta", "-5", "rope_theta"),
        ("initializer_range", "-1", "initializer_range"),
        ("rms_norm_eps", "-1e-6", "rms_norm_eps"),
        ("attention_dropout", "1.5", "attention_dropout"),
        ("tie_word_embeddings", "1", "tie_word_embeddings"),
        ("tie_word_embeddings", '"yes"', "tie_word_embeddings"),
        ("eos_token_id", '"2"', "eos_token_id"),
        ("eos_token_id", '[2, "x"]', "eos_token_id"),
        ("head_dim", "7", "head_dim"),
        ("num_key_value_heads", "3", "num_key_value_heads"),
        ("num_key_value_heads", '"two"', "num_key_value_heads"),
        ("rope_scaling", "[1, 2]", "rope_scaling"),
        ("rope_scaling", '"linear"', "rope_scaling"),
        ("rope_scaling", '{"rope_type": "linear", "factor": "x"}', "rope_scaling.factor"),
        ("rope_scaling", '{"rope_type": 5, "factor": 2}', "rope_scaling.rope_type"),
        ("rope_scaling", '{"rope_type": "linear", "factor": 0.5}', "rope_scaling.factor"),
        ("rope_scaling", '{"rope_type": "mrope", "factor": 2}', "rope_scaling.rope_type"),
        (
            "rope_scaling",
            '{"rope_type": "llama3", "factor": 8, "original_max_position_embeddings": "8192"}',
            "original_max_position_embeddings",
        ),
        ("rope_scaling", '{"rope_type": "yarn", "factor": 2, "truncate": "no"}', "truncate"),
        ("rope_scaling", '{"rope_type": "llama3", "factor": 8, "low_freq_factor": 9}', "freq"),
        ("rope_parameters", '{"rope_type": "linear"}', "rope_parameters.factor"),
        ("rope_parameters", '{"full": {"rope_type": "default"}}', "rope_parameters"),
        ("partial_rotary_factor", "0.5", "partial_rotary_factor"),
        ("model_type", "5", "model_type"),
        ("model_type", '"gpt_neo"', "model_type"),
        ("model_type", "null", "model_type"),
        ("hidden_act", '"gelu"', "hidden_act"),
        ("hidden_act", "3", "hidden_act"),
        ("torch_dtype", '"int8"', "torch_dtype"),
        ("torch_dtype", "5", "torch_dtype"),
    ],
)
def test_each_bad_value_names_the_file_and_the_key(
    tmp_path: Path, key: str, raw: str, expected_key: str
) -> None:
    directory = write(tmp_path, with_value(key, raw))
    with pytest.raises(HfConfigError) as info:
        lmhub.load_model(directory)
    err = info.value
    assert str(directory / "config.json") in str(err)
    assert err.path == directory / "config.json"
    assert err.key is not None and expected_key in err.key
    assert f"'{err.key}'" in str(err)
    assert len(str(err)) < 600  # huge values are described, not printed


def test_missing_keys_are_listed_together_and_a_missing_model_type_says_so(
    tmp_path: Path,
) -> None:
    data = {k: v for k, v in BASE.items() if k not in ("hidden_size", "vocab_size")}
    with pytest.raises(HfConfigError, match=r"'hidden_size'.*'vocab_size'.*missing") as info:
        parse_config_json(data, path=tmp_path / "config.json")
    assert info.value.key == "hidden_size"
    no_type = {k: v for k, v in BASE.items() if k != "model_type"}
    with pytest.raises(HfConfigError, match=r"'model_type' is missing.*llama") as info:
        parse_config_json(no_type, path=tmp_path / "config.json")
    assert "None" not in str(info.value)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (lambda d: (d / "config.json").mkdir(parents=True), "is not a file"),
        (lambda d: d.mkdir(), "does not exist"),
        (lambda d: write(d, "{not json"), "cannot be read as JSON"),
        (lambda d: write(d, ""), "cannot be read as JSON"),
        (lambda d: write(d, "[1, 2]"), "holds a JSON list"),
        (lambda d: write(d, "[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda d: write(d, "{}") and (d / "config.json").write_bytes(b"\xff\xfe{"), "JSON"),
    ],
)
def test_unreadable_config_files(tmp_path: Path, setup: Any, needle: str) -> None:
    directory = tmp_path / "ckpt"
    setup(directory)
    with pytest.raises(HfConfigError, match=needle) as info:
        read_hf_dir(directory)
    assert info.value.path == directory / "config.json"
    assert str(directory / "config.json") in str(info.value)


@pytest.mark.parametrize(
    ("data", "expected_key"),
    [
        ({"lmhub_family": "llama", "model_dim": "x"}, "model_dim"),
        ({"lmhub_family": "llama", "num_layers": 10**12}, "num_layers"),
        ({"lmhub_family": "llama", "num_layers": True}, "num_layers"),
        ({"lmhub_family": "llama", "lmhub_rope_scaling": [1]}, "lmhub_rope_scaling"),
        (
            {"lmhub_family": "llama", "lmhub_rope_scaling": {"kind": "yarn", "factor": "x"}},
            "lmhub_rope_scaling.factor",
        ),
        (
            {"lmhub_family": "llama", "lmhub_rope_scaling": {"kind": "linear", "factor": 0.5}},
            "lmhub_rope_scaling.factor",
        ),
        ({"lmhub_family": "lama"}, "lmhub_family"),
        ({"lmhub_family": 5}, "lmhub_family"),
        ({"lmhub_family": "deepone", "norm_eps": float("nan")}, "norm_eps"),
    ],
)
def test_lmhub_exports_are_checked_the_same_way(
    tmp_path: Path, data: dict[str, Any], expected_key: str
) -> None:
    with pytest.raises(HfConfigError) as info:
        parse_config_json(data, path=tmp_path / "config.json")
    assert info.value.key == expected_key and f"'{expected_key}'" in str(info.value)


def test_reserved_names_round_trip_through_an_export(tmp_path: Path) -> None:
    hub = lmhub.get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    config.rope_scaling = RopeScaling(kind="linear", factor=4.0)
    model = hub.create_new_model(config, meta=True)
    lmhub.hf.export(model, tmp_path / "rc", remote_code=True)
    data = json.loads((tmp_path / "rc" / "config.json").read_text())
    assert encode_field_name("rope_scaling") == "lmhub_rope_scaling" in data
    assert encode_field_name("model_dim") == "model_dim" in data
    assert read_hf_dir(tmp_path / "rc").config == config


def test_one_table_of_hf_keys() -> None:
    # Each key and each field appears once; remote-code configs answer to the generic keys.
    assert len({row.key for row in HF_KEYS}) == len({row.field for row in HF_KEYS}) == len(HF_KEYS)
    fields = {"model_dim": 1, "num_layers": 1, "tie_embeddings": True, "vocab_size": 1}
    assert remote_code_attribute_map(fields) == {
        "hidden_size": "model_dim",
        "num_hidden_layers": "num_layers",
        "tie_word_embeddings": "tie_embeddings",
    }


@pytest.mark.parametrize("field", sorted(SIZE_LIMITS))
def test_absurd_sizes_are_bounded_in_validation(field: str) -> None:
    hub = lmhub.get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    setattr(config, field, SIZE_LIMITS[field] + 1)
    with pytest.raises(lmhub.ConfigError, match=f"'{field}' is .*above lmhub's limit") as info:
        config.validate()
    assert info.value.field == field
    setattr(config, field, 10**5000)  # too long for str(): the message names its size instead
    with pytest.raises(lmhub.ConfigError, match="-bit number"):
        config.validate()


def test_a_model_bigger_than_the_device_is_refused_before_allocating() -> None:
    hub = lmhub.get_model_hub("llama")
    config = hub.get_arch_config("llama_tiny")
    config.vocab_size, config.model_dim = SIZE_LIMITS["vocab_size"], 2**16  # 4 TiB of fp32
    config.num_heads = config.num_kv_heads = 64
    with pytest.raises(lmhub.ConfigError, match=r"GiB for its weights.*meta=True"):
        hub.create_new_model(config, device="cpu")
    assert hub.create_new_model(config, meta=True).embed.weight.is_meta


# -- fuzz: whatever the values, only lmhub errors escape ----------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30).map(lambda i: i * 10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["", "1e-6", "32", "linear", "llama3", "yarn", "dynamic", "llama"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
ROPE_KEYS = [
    "rope_type", "type", "factor", "rope_theta", "original_max_position_embeddings",
    "low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow", "attention_factor",
    "mscale", "mscale_all_dim", "truncate", "partial_rotary_factor",
]  # fmt: skip
rope_dicts = st.dictionaries(st.sampled_from(ROPE_KEYS), json_values, max_size=5)
TOP_KEYS = [*BASE, "head_dim", "attention_dropout", "attention_bias", "mlp_bias", "dtype"]


@settings(
    max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    changes=st.dictionaries(
        st.sampled_from([*TOP_KEYS, "rope_scaling", "rope_parameters", "hidden_act"]),
        json_values,
        max_size=3,
    ),
    rope=st.none() | rope_dicts,
    rope_key=st.sampled_from(["rope_scaling", "rope_parameters"]),
)
def test_fuzzed_hf_values_raise_only_lmhub_errors(
    changes: dict[str, Any], rope: dict[str, Any] | None, rope_key: str
) -> None:
    data = {**BASE, **changes}
    if rope is not None:
        data[rope_key] = rope
    try:
        family, config, _ = parse_config_json(data, path=Path("/x/config.json"))
    except HfConfigError as exc:
        assert "/x/config.json" in str(exc) and exc.key is not None
        return
    if config.num_layers <= 4:  # a config that reads must build (RoPE tables are computed)
        lmhub.get_model_hub(family).create_new_model(config, meta=True)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    family=st.sampled_from(["llama", "deepone", "causal_lm", "single_head"]),
    changes=st.dictionaries(
        st.sampled_from(
            [
                *("model_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim"),
                *("vocab_size", "norm_eps", "dropout_p", "attn_impl", "lmhub_rope_scaling"),
                "eos_token_id",
            ]
        ),
        json_values | rope_dicts,
        max_size=3,
    ),
)
def test_fuzzed_lmhub_export_values_raise_only_lmhub_errors(
    family: str, changes: dict[str, Any]
) -> None:
    try:
        parse_config_json({"lmhub_family": family, **changes}, path=Path("/x/config.json"))
    except LmhubError as exc:
        assert isinstance(exc, HfConfigError) and "/x/config.json" in str(exc)
