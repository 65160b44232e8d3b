"""lmhub's Gemma 4 (text) against transformers' Gemma4ForCausalLM on the same random weights.

Cases: an "E"-style model (per-layer embeddings, the last two layers sharing the first two's
keys and values with double-wide feed-forwards, global layers with wider heads and proportional
RoPE, soft-capped logits), a 31B-style one (global layers with one key/value head whose values
are the keys, the default 5:1 pattern) and a 26B-A4B-style MoE (experts beside the dense
feed-forward). Each is checked for logits under every attention kernel (with left padding),
greedy generation with every cache (the sliding layers' windows are shorter than the prompts,
so the static cache's ring buffers wrap), an exact export round trip, and loading the published
multimodal layout (keys under ``model.language_model.``, towers skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
import lmhub.hf
from lmhub.nn.attention import ATTN_IMPLS
from tests.oracle.hf_models import save_tiny_hf
from tests.oracle.parity import (
    GENERATION_SETTINGS,
    assert_export_round_trips,
    assert_greedy_generation_matches,
    assert_loads_like,
    assert_logits_match,
    match_hf_kernel,
    save_multimodal_layout,
)

pytest.importorskip("transformers")

VOCAB = 160

FOUR_LAYERS = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]

# case -> HF config overrides (on tests.oracle.hf_models.TINY_FIELDS)
CASES: dict[str, dict[str, Any]] = {
    "e-style": dict(
        num_hidden_layers=4,
        layer_types=FOUR_LAYERS,
        head_dim=16,
        global_head_dim=32,
        sliding_window=5,
        hidden_size_per_layer_input=8,
        vocab_size_per_layer_input=VOCAB,
        num_kv_shared_layers=2,
        use_double_wide_mlp=True,
        final_logit_softcapping=30.0,
    ),
    "k-eq-v": dict(
        num_hidden_layers=6,
        head_dim=16,
        global_head_dim=32,
        sliding_window=4,
        attention_k_eq_v=True,
        num_global_key_value_heads=1,
        hidden_size_per_layer_input=0,
        final_logit_softcapping=30.0,
    ),
    "moe": dict(
        num_hidden_layers=3,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        head_dim=16,
        global_head_dim=32,
        sliding_window=4,
        attention_k_eq_v=True,
        num_global_key_value_heads=1,
        hidden_size_per_layer_input=0,
        enable_moe_block=True,
        num_experts=6,
        top_k_experts=2,
        moe_intermediate_size=24,
        final_logit_softcapping=30.0,
    ),
}


def save_case(directory: Path, case: str) -> Any:
    """Save the tiny HF model of ``case`` with every stored scale random too (the layer
    scalars, the router's input and per-expert scales), and return it."""
    hf = save_tiny_hf(directory, "gemma4_text", **CASES[case])
    with torch.no_grad():
        for name, buffer in hf.named_buffers():
            if name.endswith("layer_scalar"):
                buffer.uniform_(0.5, 1.5)
        for name, p in hf.named_parameters():
            if name.endswith(("router.scale", "per_expert_scale")):
                p.uniform_(0.5, 1.5)
    hf.save_pretrained(directory)
    hf.generation_config.eos_token_id = None  # nothing stops early
    return hf


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    hf = save_case(directory, case)
    model = lmhub.load_model(directory, config=lmhub_config or None).eval()
    assert type(model).__name__ == "Gemma4Model"
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    match_hf_kernel(hf, attn_impl)
    assert_logits_match(hf, model, vocab=VOCAB, seq=17)


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
        model_type="gemma4_text",
        config_keys=("layer_types", "num_kv_shared_layers", "attention_k_eq_v", "sliding_window"),
        vocab=VOCAB,
    )
    per_layer = back.config.to_dict()["per_layer_config"]
    assert per_layer == hf.config.to_dict()["per_layer_config"]


def test_the_published_multimodal_layout_loads_its_text_model(tmp_path: Path) -> None:
    hf = save_case(tmp_path / "text", "e-style")
    save_multimodal_layout(
        tmp_path / "text",
        tmp_path / "mm",
        text_model_type="gemma4_text",
        config={
            "model_type": "gemma4",
            "architectures": ["Gemma4ForConditionalGeneration"],
            "vision_config": {"model_type": "gemma4_vision"},
            "audio_config": {"model_type": "gemma4_audio"},
            "tie_word_embeddings": True,
        },
        extra_tensors={
            "model.vision_tower.encoder.layers.0.mlp.up_proj.linear.weight": torch.zeros(3, 3),
            "model.audio_tower.layers.0.feed_forward1.ffw_layer_1.linear.weight": torch.zeros(3),
            "model.embed_vision.embedding_projection.weight": torch.zeros(3, 3),
            "model.embed_audio.embedding_projection.weight": torch.zeros(3, 3),
        },
    )
    assert_loads_like(hf, tmp_path / "mm", vocab=VOCAB)
