"""lmhub's Mistral, Qwen2, Qwen3, Gemma 1/2/3, Phi-3, Granite, OLMo 2/3 and SmolLM3 against
transformers on the same random weights (the oracle).

Each case builds a tiny random transformers model that exercises one of the family's features
(a sliding window shorter than the input, per-layer sliding/full attention, projection biases,
per-head q/k norms, tied and untied embeddings, Gemma's (1 + w) norms, GeGLU and scaled
embeddings, sandwich norms, softcaps, query_pre_attn_scalar, local/global RoPE bases, Phi-3's
fused projections, longrope and partial rotary, Granite's multipliers, OLMo's post-norms and
whole-projection q/k norms, SmolLM3's NoPE layers), saves it, and checks lmhub's load of it:
logits under every attention kernel, greedy generation with each KV cache (ring buffers for
sliding layers) for one prompt and a left-padded batch, export back to a directory transformers
loads natively, and an exact HF -> lmhub -> HF state-dict round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.nn.attention import ATTN_IMPLS
from tests.generation.test_generate_oracle import left_padded
from tests.oracle.parity import (
    ATOL,
    GENERATION_SETTINGS,
    assert_export_round_trips,
    assert_generates_like,
    assert_greedy_generation_matches,
    assert_logits_match,
    load_tiny_pair,
    max_diff,
    ring_buffer_lengths,
)

VOCAB = 160
WINDOW = 6
INIT_STD = 0.2  # weights large enough that greedy decoding does not repeat one token
LONGROPE_ORIGINAL = 32  # the longrope case's original_max_position_embeddings

# case -> (model_type, lmhub family, HF config overrides, the window lmhub must give each layer)
CASES: dict[str, tuple[str, str, dict[str, Any], list[int | None]]] = {
    "mistral-window": ("mistral", "mistral", {"sliding_window": WINDOW}, [WINDOW, WINDOW]),
    "mistral-full-tied": (
        "mistral",
        "mistral",
        {"sliding_window": None, "tie_word_embeddings": True, "head_dim": 32},
        [None, None],
    ),
    "qwen2-full": ("qwen2", "qwen2", {}, [None, None]),
    # Layers from max_window_layers (1) on slide; tied embeddings.
    "qwen2-window-tied": (
        "qwen2",
        "qwen2",
        {
            "num_hidden_layers": 3,
            "use_sliding_window": True,
            "sliding_window": WINDOW,
            "max_window_layers": 1,
            "tie_word_embeddings": True,
        },
        [None, WINDOW, WINDOW],
    ),
    # Heads wider than hidden_size / heads, per-head q/k norms, tied embeddings.
    "qwen3-tied": ("qwen3", "qwen3", {"head_dim": 32, "tie_word_embeddings": True}, [None, None]),
    # Biases on all four projections; the upper two of three layers slide.
    "qwen3-window-bias": (
        "qwen3",
        "qwen3",
        {
            "num_hidden_layers": 3,
            "head_dim": 16,
            "attention_bias": True,
            "use_sliding_window": True,
            "sliding_window": WINDOW - 1,
            "max_window_layers": 1,
        },
        [None, WINDOW - 1, WINDOW - 1],
    ),
    # Untied, multi-query attention.
    "gemma-mqa": ("gemma", "gemma", {"head_dim": 16, "num_key_value_heads": 1}, [None, None]),
    # Tied (Gemma's default), heads wider than hidden_size / heads.
    "gemma-tied": ("gemma", "gemma", {"head_dim": 32, "tie_word_embeddings": True}, [None, None]),
    # Alternating sliding/full layers, both softcaps, query_pre_attn_scalar != head_dim. (Tied,
    # the random sqrt(d)-scaled embeddings outweigh the sandwich-normed sublayers and greedy
    # decoding repeats the last token; Gemma 1's cases cover tying.)
    "gemma2-window-softcap": (
        "gemma2",
        "gemma2",
        {
            "num_hidden_layers": 3,
            "head_dim": 16,
            "query_pre_attn_scalar": 24,
            "sliding_window": WINDOW,
            "attn_logit_softcapping": 5.0,
            "final_logit_softcapping": 4.0,
        },
        [WINDOW, None, WINDOW],
    ),
    # No softcaps, explicit layer types (full first), untied, GQA with wide heads.
    "gemma2-nocap-untied": (
        "gemma2",
        "gemma2",
        {
            "num_hidden_layers": 3,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "sliding_window": WINDOW - 1,
            "layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
            "attn_logit_softcapping": None,
            "final_logit_softcapping": None,
        },
        [None, WINDOW - 1, WINDOW - 1],
    ),
    # Five sliding layers to a global one, local/global RoPE bases (linear scaling on the global
    # one), per-head q/k norms, query_pre_attn_scalar != head_dim, untied.
    "gemma3-pattern-rope": (
        "gemma3_text",
        "gemma3",
        {
            "num_hidden_layers": 7,
            "head_dim": 16,
            "query_pre_attn_scalar": 20,
            "sliding_window": WINDOW,
            "rope_parameters": {
                "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5e4},
                "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
            },
        },
        [WINDOW] * 5 + [None, WINDOW],
    ),
    # Gemma 2's final-logit softcap on Gemma 3, alternating layers, wide heads. (Not the
    # attention softcap: transformers' Gemma 3 drops it under SDPA, its default kernel.)
    "gemma3-softcap": (
        "gemma3_text",
        "gemma3",
        {
            "head_dim": 32,
            "sliding_window": WINDOW - 1,
            "layer_types": ["sliding_attention", "full_attention"],
            "final_logit_softcapping": 4.0,
        },
        [WINDOW - 1, None],
    ),
    # Fused qkv/gate_up split by the weight map, GQA, a window on every layer. (transformers'
    # Phi-3 pads with id 32000 by default, past the tiny vocabulary.)
    "phi3-window": (
        "phi3",
        "phi3",
        {"head_dim": 16, "sliding_window": WINDOW, "pad_token_id": None},
        [WINDOW, WINDOW],
    ),
    # longrope (short factors: the inputs here stay within the original length; the long ones
    # are tested below) on half of each head, tied embeddings, MQA.
    "phi3-longrope-partial": (
        "phi3",
        "phi3",
        {
            "head_dim": 16,
            "num_key_value_heads": 1,
            "pad_token_id": None,
            "tie_word_embeddings": True,
            "max_position_embeddings": 128,
            "original_max_position_embeddings": LONGROPE_ORIGINAL,
            "partial_rotary_factor": 0.5,
            "rope_scaling": {
                "rope_type": "longrope",
                "short_factor": [1.0, 1.5, 2.0, 3.0],
                "long_factor": [2.0, 4.0, 8.0, 16.0],
            },
        },
        [None, None],
    ),
    # All four multipliers, biases on the four attention projections, tied embeddings.
    "granite-tied-bias": (
        "granite",
        "granite",
        {
            "head_dim": 16,
            "tie_word_embeddings": True,
            "attention_bias": True,
            "embedding_multiplier": 3.0,
            "residual_multiplier": 0.5,
            "attention_multiplier": 0.2,
            "logits_scaling": 2.5,
        },
        [None, None],
    ),
    # Untied, MLP biases, other multipliers.
    "granite-untied": (
        "granite",
        "granite",
        {
            "head_dim": 16,
            "mlp_bias": True,
            "embedding_multiplier": 1.5,
            "residual_multiplier": 0.8,
            "attention_multiplier": 0.1,
            "logits_scaling": 4.0,
        },
        [None, None],
    ),
    # Post-sublayer norms only, q/k norms over the whole (GQA: unequal) projections, tied.
    "olmo2-gqa-tied": ("olmo2", "olmo2", {"tie_word_embeddings": True}, [None, None]),
    # Biases on all four projections, one key/value head per query head, untied.
    "olmo2-bias-mha": (
        "olmo2",
        "olmo2",
        {"attention_bias": True, "num_key_value_heads": 4},
        [None, None],
    ),
    # transformers' default pattern: three sliding layers, then a full one.
    "olmo3-window": (
        "olmo3",
        "olmo3",
        {"num_hidden_layers": 4, "sliding_window": WINDOW},
        [WINDOW, WINDOW, WINDOW, None],
    ),
    # YaRN on the full layer only, plain RoPE of another base on the sliding ones.
    "olmo3-yarn": (
        "olmo3",
        "olmo3",
        {
            "num_hidden_layers": 3,
            "sliding_window": WINDOW - 1,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {
                "full_attention": {
                    "rope_type": "yarn",
                    "factor": 4.0,
                    "original_max_position_embeddings": 16,
                    "rope_theta": 1e4,
                },
                "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
            },
        },
        [WINDOW - 1, None, WINDOW - 1],
    ),
    # Every second layer without RoPE (no_rope_layer_interval), tied (SmolLM3's default).
    "smollm3-nope": (
        "smollm3",
        "smollm3",
        {"no_rope_layer_interval": 2, "tie_word_embeddings": True},
        [None, None],
    ),
    # Explicit NoPE flags (the first layer has none); with use_sliding_window the NoPE layer
    # slides (transformers' default layer_types); untied.
    "smollm3-nope-window": (
        "smollm3",
        "smollm3",
        {"no_rope_layers": [0, 1], "use_sliding_window": True, "sliding_window": WINDOW},
        [WINDOW, None],
    ),
}


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    model_type, family, overrides, windows = CASES[case]
    hf, model = load_tiny_pair(
        directory, model_type, lmhub_config=lmhub_config, initializer_range=INIT_STD, **overrides
    )
    assert lmhub.get_family(family).model_class is type(model)
    assert [layer.attn.sliding_window for layer in model.layers] == windows
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    ids, got = assert_logits_match(hf, model, vocab=VOCAB, seq=4 * WINDOW)  # several windows
    if any(CASES[case][3]):  # the window matters: full attention gives other logits
        full = lmhub.load_model(tmp_path, config={"sliding_window": None, "layer_types": None})
        with torch.no_grad():
            assert max_diff(full.eval()(ids), got) > 1e-3


@GENERATION_SETTINGS
@pytest.mark.parametrize("case", list(CASES))
def test_greedy_generation_matches_transformers(
    tmp_path: Path, case: str, cache: str | None, fused: bool
) -> None:
    hf, model = load_case(tmp_path, case)
    lengths = ring_buffer_lengths(WINDOW)
    assert_greedy_generation_matches(
        hf, model, vocab=VOCAB, cache=cache, fused=fused, batch_new_tokens=10, **lengths
    )


@pytest.mark.parametrize("case", list(CASES))
def test_export_round_trips_exactly(tmp_path: Path, case: str) -> None:
    hf, model = load_case(tmp_path / "hf", case)
    assert_export_round_trips(
        hf,
        model,
        tmp_path,
        model_type=CASES[case][0],
        config_keys=("sliding_window", "layer_types", "tie_word_embeddings", "head_dim"),
        vocab=VOCAB,
        seq=3 * WINDOW,
        missing_as_none=True,
    )


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
def test_longrope_past_the_original_length_matches_transformers(
    tmp_path: Path, attn_impl: str
) -> None:
    """Inputs longer than original_max_position_embeddings switch to the long factors, in
    lmhub as in transformers; shorter ones keep the short factors (the cases above)."""
    hf, model = load_case(tmp_path, "phi3-longrope-partial", attn_impl=attn_impl)
    ids = torch.randint(0, VOCAB, (2, LONGROPE_ORIGINAL + 8))
    with torch.no_grad():
        long = model(ids)
        assert max_diff(long, hf(ids).logits) <= ATOL
        # The short factors would give other logits for the first positions too.
        short = model(ids[:, :LONGROPE_ORIGINAL])
    assert max_diff(long[:, :LONGROPE_ORIGINAL], short) > 1e-3


@pytest.mark.parametrize(("cache", "fused"), [("static", True), ("dynamic", False)])
def test_longrope_generation_past_the_original_length_matches_transformers(
    tmp_path: Path, cache: str, fused: bool
) -> None:
    # A prompt already past the original length: every step uses the long factors in both.
    # (A generation that crosses the length mid-way differs: transformers then drops its cache
    # and recomputes the whole sequence with the long factors.)
    hf, model = load_case(tmp_path, "phi3-longrope-partial")
    ids = torch.randint(0, VOCAB, (1, LONGROPE_ORIGINAL + 2))
    assert_generates_like(hf, model, ids, None, 8, cache=cache, fused_weights=fused)


@pytest.mark.skipif("flex" not in ATTN_IMPLS, reason="this PyTorch has no flex attention")
@pytest.mark.parametrize("case", ["mistral-window", "gemma2-window-softcap", "olmo3-yarn"])
def test_greedy_generation_under_flex_matches_transformers(tmp_path: Path, case: str) -> None:
    # Flex's mask functions read the ring-buffer masks of the sliding layers step by step.
    hf, model = load_case(tmp_path, case, attn_impl="flex")
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (WINDOW + 4, 3)]
    ids, mask = left_padded(prompts)
    assert_generates_like(hf, model, ids, mask, 2 * WINDOW + 1)
