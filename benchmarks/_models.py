"""The benchmark models: any lmhub family with a Hugging Face counterpart, saved by transformers.

``--arch NAME`` takes a published preset as it is. ``--family NAME`` takes the family's tiny
preset (so its features: windows, softcaps, biases, fused projections, norms) at the benchmark's
size, so families compare at one shape. Either way transformers builds the model from lmhub's
``config.json`` mapping with random weights and saves it, and both libraries load that directory.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.family import ModelFamily
from lmhub.models.registry import find_arch
from lmhub.nn.moe import MoeConfig

WINDOW = 64
"""The sliding window given to windowed families at benchmark size (shorter than the runs)."""

MOE_EXPERTS, MOE_TOP_K = 8, 2
"""``--moe``: a Mixtral-style mixture of 8 experts (of the shape's ``ffn_inner_dim``), top 2."""


def add_model_args(parser: argparse.ArgumentParser, *, default_family: str = "llama") -> None:
    """Add ``--family`` / ``--arch`` to a benchmark's parser."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--family",
        default=default_family,
        help=f"an lmhub family, at the benchmark's size (default {default_family})",
    )
    which.add_argument("--arch", default=None, help="a published lmhub preset, as it is")
    which.add_argument(
        "--moe",
        action="store_true",
        help=f"a Mixtral-style mixture of {MOE_EXPERTS} experts, top {MOE_TOP_K}, instead",
    )


def bench_config(
    family_name: str, arch: str | None, shape: dict[str, int], *, moe: bool = False
) -> tuple[Any, Any]:
    """Return ``(family, config)``: ``arch`` as it is, or the family's tiny preset resized to
    ``shape`` (lmhub config fields: model_dim, num_layers, num_heads, ...); ``moe`` makes it a
    Mixtral of that shape whose experts are ``ffn_inner_dim`` wide."""
    if moe:
        family, config = bench_config("mixtral", None, shape)
        experts = MoeConfig(
            num_experts=MOE_EXPERTS, top_k=MOE_TOP_K, expert_inner_dim=shape["ffn_inner_dim"]
        )
        return family, dataclasses.replace(config, moe=experts)
    if arch is not None:
        found = find_arch(arch)
        if found is None:
            raise SystemExit(f"'{arch}' is not an lmhub preset; `lmhub archs` lists them.")
        return found, found.archs.get(arch)
    family = lmhub.get_family(family_name)
    tiny = next((a for a in family.archs.names() if a.endswith("_tiny")), None)
    if family.hf is None or tiny is None:
        raise SystemExit(f"The family '{family_name}' has no Hugging Face counterpart to compare.")
    config = family.archs.get(tiny)
    fields = {f.name for f in dataclasses.fields(config)}
    sized = {k: v for k, v in shape.items() if k in fields}
    if "head_dim" in fields:
        sized["head_dim"] = shape["model_dim"] // shape["num_heads"]
    if "num_kv_heads" in fields and "num_kv_heads" not in shape:
        sized["num_kv_heads"] = shape["num_heads"]
    if getattr(config, "sliding_window", None) is not None:
        sized["sliding_window"] = WINDOW
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if name in fields and getattr(config, name) is not None:
            sized[name] = 0
    pattern, n = getattr(config, "layer_types", None), shape["num_layers"]
    if pattern is None:
        return family, dataclasses.replace(config, **sized)
    # The tiny preset's sliding/full pattern at the new depth: repeated (Gemma's alternation),
    # or, where the family cannot express that (Qwen's sliding top layers), stretched.
    repeated = [pattern[i % len(pattern)] for i in range(n)]
    stretched = [pattern[i * len(pattern) // n] for i in range(n)]
    for types in (repeated, stretched):
        candidate = dataclasses.replace(config, **sized, layer_types=types)
        try:
            family.hf.config_to_hf(candidate)
        except ConfigError:
            continue
        return family, candidate
    raise SystemExit(f"Cannot resize the '{family_name}' layer pattern {pattern} to {n} layers.")


def describe(family: ModelFamily[Any, Any], config: Any, arch: str | None) -> str:
    """One line naming the benchmark model."""
    model = lmhub.get_model_hub(family).create_new_model(config, meta=True)
    n = sum(p.numel() for p in model.parameters())
    name = arch or f"{family.name} (tiny preset's features)"
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
    return f"{name}, {size} parameters, model_dim {config.model_dim}, {config.num_layers} layers"


def save_hf_checkpoint(
    family: ModelFamily[Any, Any],
    config: Any,
    directory: Path,
    *,
    dtype: torch.dtype = torch.float32,
    max_shard_size: str = "5GB",
) -> None:
    """Save a random transformers model of ``config`` to ``directory`` (unless one is there)."""
    if (directory / "config.json").is_file():
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    assert family.hf is not None
    hf_fields = family.hf.config_to_hf(config)
    hf_config = AutoConfig.for_model(family.hf.model_types[0], **hf_fields)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
    n = sum(p.numel() for p in model.parameters())
    print(f"saving a {n / 1e6:.0f}M-parameter {type(model).__name__} to {directory}")
    model.save_pretrained(directory, max_shard_size=max_shard_size)
