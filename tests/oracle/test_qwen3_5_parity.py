"""lmhub's Qwen3.5 (hybrid Gated DeltaNet / gated attention; dense and MoE) against transformers
on the same random weights.

Cases: a dense text model with transformers' default 3:1 layer pattern, a dense one with an
explicit pattern and tied embeddings, and a MoE one (softmax top-k with a gated shared expert).
Each is checked for logits under both kernels (with left padding, and over more than one
64-token chunk of the delta rule), greedy generation with every cache (one prompt and a
left-padded batch), an exact export round trip, and loading the published multimodal layout
(text config under ``text_config``, keys under ``model.language_model.``, vision tower and MTP
head skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from lmhub.nn.attention import ATTN_IMPLS
from tests.oracle.parity import (
    GENERATION_SETTINGS,
    assert_export_round_trips,
    assert_greedy_generation_matches,
    assert_loads_like,
    assert_logits_match,
    load_tiny_pair,
    match_hf_kernel,
    save_multimodal_layout,
)

pytest.importorskip("transformers")

VOCAB = 160
# Small weights: at transformers' usual test scale (0.2) this hybrid amplifies float rounding
# far more than a plain transformer (a linear-attention head whose output is near zero is normed
# back to unit size; a router near a tie shifts its weights): transformers' own logits then move
# by ~1e-4 when its first layer's output moves by one ulp, and a 1e-5 comparison means nothing.
INIT_STD = 0.05

SHAPE: dict[str, Any] = dict(
    num_hidden_layers=4,
    head_dim=16,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=32,
    linear_value_head_dim=16,
)

# case -> (model_type, HF config overrides)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dense": ("qwen3_5_text", {}),
    "dense-pattern-tied": (
        "qwen3_5_text",
        {
            "num_hidden_layers": 3,
            "layer_types": ["full_attention", "linear_attention", "full_attention"],
            "tie_word_embeddings": True,
        },
    ),
    "moe": (
        "qwen3_5_moe_text",
        {
            "num_experts": 8,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 48,
        },
    ),
}


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    model_type, overrides = CASES[case]
    hf, model = load_tiny_pair(
        directory,
        model_type,
        lmhub_config=lmhub_config,
        initializer_range=INIT_STD,
        **{**SHAPE, **overrides},
    )
    assert type(model).__name__ == "Qwen3_5Model"
    want = [t.removesuffix("_attention") for t in hf.config.layer_types]
    assert list(model.mixer_types) == want
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    match_hf_kernel(hf, attn_impl)
    # two chunks of the delta rule
    assert_logits_match(hf, model, vocab=VOCAB, seq=70)


@GENERATION_SETTINGS
@pytest.mark.parametrize("case", list(CASES))
def test_greedy_generation_matches_transformers(
    tmp_path: Path, case: str, cache: str | None, fused: bool
) -> None:
    hf, model = load_case(tmp_path, case)
    assert_greedy_generation_matches(hf, model, vocab=VOCAB, cache=cache, fused=fused)


@pytest.mark.parametrize("case", list(CASES))
def test_export_round_trips_exactly(tmp_path: Path, case: str) -> None:
    hf, model = load_case(tmp_path / "hf", case)
    back = assert_export_round_trips(
        hf,
        model,
        tmp_path,
        model_type=CASES[case][0],
        config_keys=("layer_types", "tie_word_embeddings", "head_dim", "linear_num_value_heads"),
        vocab=VOCAB,
    )
    assert back.config.rope_parameters["partial_rotary_factor"] == 0.25


def test_the_published_multimodal_layout_loads_its_text_model(tmp_path: Path) -> None:
    hf, _ = load_case(tmp_path / "text", "dense")
    save_multimodal_layout(
        tmp_path / "text",
        tmp_path / "vl",
        text_model_type="qwen3_5_text",
        config={
            "model_type": "qwen3_5",
            "architectures": ["Qwen3_5ForConditionalGeneration"],
            "vision_config": {"depth": 1},
            "tie_word_embeddings": False,
        },
        extra_tensors={
            "model.visual.blocks.0.attn.qkv.weight": torch.zeros(3, 3),
            "mtp.layers.0.mlp.up_proj.weight": torch.zeros(3, 3),
        },
    )
    assert_loads_like(hf, tmp_path / "vl", vocab=VOCAB)
