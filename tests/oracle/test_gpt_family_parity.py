"""lmhub's GPT-2 and GPT-NeoX against transformers on the same random weights (the oracle).

Each case builds a tiny random transformers model that exercises one of the family's features
(GPT-2's Conv1D layout, fused c_attn and learned positions, tied and untied heads; GPT-NeoX's
per-head fused query_key_value, partial and full RoPE, parallel and sequential residuals,
attention without biases), saves it, and checks lmhub's load of it: logits under every attention
kernel, greedy generation with each KV cache for one prompt and a left-padded batch, export back
to a directory transformers loads natively, and an exact HF -> lmhub -> HF state-dict round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import lmhub
from lmhub.nn.attention import ATTN_IMPLS
from tests.oracle.parity import (
    GENERATION_SETTINGS,
    assert_export_round_trips,
    assert_greedy_generation_matches,
    assert_loads_like,
    assert_logits_match,
    load_tiny_pair,
)

VOCAB = 160
INIT_STD = 0.2  # weights large enough that greedy decoding does not repeat one token
BIAS_SCALE = 0.1  # biases small enough (the final LayerNorm's shifts every logit alike)
SEED = 1  # weights on which greedy decoding varies in every case (seed 0 is stuck in some)

# case -> (model_type, HF config overrides, what lmhub's config must say)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "gpt2-tied": ("gpt2", {}, {"tie_embeddings": True, "activation": "gelu_tanh"}),
    "gpt2-untied-gelu": (
        "gpt2",
        {"tie_word_embeddings": False, "activation_function": "gelu", "n_inner": None},
        {"tie_embeddings": False, "activation": "gelu", "ffn_inner_dim": 256},
    ),
    "neox-parallel-quarter": (
        "gpt_neox",
        {"use_parallel_residual": True, "rotary_pct": 0.25},
        {"use_parallel_residual": True, "partial_rotary_factor": 0.25},
    ),
    "neox-sequential-full": (
        "gpt_neox",
        {"use_parallel_residual": False, "rotary_pct": 1.0, "rotary_emb_base": 500.0},
        {"use_parallel_residual": False, "partial_rotary_factor": 1.0, "rope_theta": 500.0},
    ),
    "neox-parallel-full-nobias": (
        "gpt_neox",
        {"rotary_pct": 1.0, "attention_bias": False},
        {"attn_bias": False, "partial_rotary_factor": 1.0},
    ),
    "neox-sequential-quarter-3layers": (
        "gpt_neox",
        {"use_parallel_residual": False, "rotary_pct": 0.25, "num_hidden_layers": 3},
        {"use_parallel_residual": False, "num_layers": 3},
    ),
}


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    model_type, overrides, expected = CASES[case]
    hf, model = load_tiny_pair(
        directory,
        model_type,
        lmhub_config=lmhub_config,
        seed=SEED,
        initializer_range=INIT_STD,
        bias_scale=BIAS_SCALE,
        **overrides,
    )
    assert lmhub.get_family(model_type).model_class is type(model)
    for field, value in expected.items():
        assert getattr(model.config, field) == value, field
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    # Absolute positions (GPT-2) tell transformers' forward and lmhub's positions apart.
    assert_logits_match(hf, model, vocab=VOCAB, seq=24, hf_positions_skip_padding=True)


@GENERATION_SETTINGS
@pytest.mark.parametrize("case", list(CASES))
def test_greedy_generation_matches_transformers(
    tmp_path: Path, case: str, cache: str | None, fused: bool
) -> None:
    hf, model = load_case(tmp_path, case)
    assert_greedy_generation_matches(
        hf,
        model,
        vocab=VOCAB,
        cache=cache,
        fused=fused,
        new_tokens=13,
        batch_new_tokens=10,
        prompt_tries=10,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_export_round_trips_exactly(tmp_path: Path, case: str) -> None:
    model_type = CASES[case][0]
    hf, model = load_case(tmp_path / "hf", case)
    back = assert_export_round_trips(
        hf,
        model,
        tmp_path,
        model_type=model_type,
        config_keys=("tie_word_embeddings", "use_parallel_residual", "rope_parameters"),
        vocab=VOCAB,
        seq=20,
        missing_as_none=True,
    )
    ours, theirs = getattr(back.config, "n_inner", None), getattr(hf.config, "n_inner", None)
    if model_type == "gpt2" and theirs is None:
        theirs = 4 * hf.config.n_embd  # transformers' meaning of null
    assert ours == theirs, "n_inner"


def test_the_round_trip_converts_each_fused_tensor_through_the_split(tmp_path: Path) -> None:
    """The q/k/v lmhub holds are the per-head thirds of transformers' fused tensors."""
    hf, model = load_case(tmp_path, "neox-parallel-quarter")
    fused = hf.gpt_neox.layers[1].attention.query_key_value.weight
    heads, d = 4, 16
    per_head = fused.view(heads, 3, d, -1)
    attn = model.layers[1].attn
    for j, proj in enumerate((attn.q_proj, attn.k_proj, attn.v_proj)):
        assert torch.equal(proj.weight, per_head[:, j].reshape(heads * d, -1))
    hf2, gpt2 = load_case(tmp_path / "gpt2", "gpt2-tied")
    c_attn = hf2.transformer.h[0].attn.c_attn.weight  # Conv1D: [in, 3 * out]
    assert torch.equal(gpt2.layers[0].attn.k_proj.weight, c_attn[:, 64:128].t())


def test_a_gpt2_model_checkpoint_with_bare_names_and_mask_buffers_loads(tmp_path: Path) -> None:
    """openai-community/gpt2's files come from GPT2Model: no ``transformer.`` prefix, and the
    causal-mask buffers older transformers saved."""
    from safetensors.torch import save_file

    hf, _ = load_case(tmp_path, "gpt2-tied")
    state = load_file(tmp_path / "model.safetensors")
    bare = {k.removeprefix("transformer."): v for k, v in state.items()}
    for i in range(hf.config.n_layer):
        bare[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
        bare[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(bare, tmp_path / "model.safetensors")
    assert_loads_like(hf, tmp_path, vocab=VOCAB, shape=(2, 12))
