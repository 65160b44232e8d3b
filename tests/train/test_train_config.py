"""The training config: shipped examples parse, overrides reach nested and mapping fields, and
the YAML written to the output directory reads back to the same config."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lmhub.config import apply_overrides, from_yaml, to_yaml
from lmhub.train.config import TrainConfig
from lmhub.train.config_files import list_examples, load_train_config

REQUIRED_KEYS = [
    "model", "model_config", "tokenizer", "lm_type", "data.train", "data.valid", "seq_len",
    "batch_size", "grad_accum_steps", "max_steps", "optimizer.lr", "optimizer.weight_decay",
    "lr_schedule.kind", "lr_schedule.warmup_steps", "precision", "checkpoint.every_steps",
    "checkpoint.keep_last", "eval.every_steps", "log.every_steps", "output_dir", "seed", "resume",
]  # fmt: skip


def test_every_documented_key_exists() -> None:
    config = TrainConfig()
    for key in REQUIRED_KEYS:
        node = config
        for part in key.split("."):
            node = getattr(node, part)


def test_examples_parse_and_take_overrides() -> None:
    assert "arlm_tiny" in list_examples()
    config = load_train_config("arlm_tiny", ["optimizer.lr=1e-3", "model_config.num_layers=3"])
    assert config.optimizer.lr == 1e-3
    assert config.model_config["num_layers"] == 3 and config.model_config["model_dim"] == 64


@settings(max_examples=30, deadline=None)
@given(
    lr=st.floats(min_value=1e-8, max_value=10.0, allow_nan=False),
    steps=st.integers(min_value=1, max_value=10**6),
    kind=st.sampled_from(["cosine", "linear", "constant"]),
    precision=st.sampled_from(["fp32", "bf16-mixed", "bf16"]),
    valid=st.none() | st.text(min_size=1, max_size=20),
    layers=st.integers(min_value=1, max_value=64),
)
def test_yaml_round_trip(
    lr: float, steps: int, kind: str, precision: str, valid: str | None, layers: int
) -> None:
    config = apply_overrides(
        TrainConfig(),
        {"optimizer": {"lr": lr}, "max_steps": steps, "lr_schedule": {"kind": kind},
         "precision": precision, "data": {"valid": valid}, "model_config": {"num_layers": layers}},
    )  # fmt: skip
    assert from_yaml(TrainConfig, to_yaml(config)) == config


def test_a_malloc_threshold_outside_glibcs_range_names_the_field() -> None:
    import pytest

    from lmhub.errors import ConfigError
    from lmhub.train.config import check_train_config

    for bad in (0.0, 64.0):
        config = apply_overrides(TrainConfig(), {"malloc_mmap_threshold_mib": bad})
        with pytest.raises(ConfigError) as info:
            check_train_config(config)
        assert info.value.field == "malloc_mmap_threshold_mib" and "null" in str(info.value)
    fine = {"malloc_mmap_threshold_mib": None, "data": {"train": "corpus.txt"}}
    check_train_config(apply_overrides(TrainConfig(), fine))


def test_the_malloc_threshold_takes_on_linux_glibc() -> None:
    import platform

    from lmhub.train.memory import set_malloc_mmap_threshold

    took = set_malloc_mmap_threshold(1.0)
    assert took == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
