"""lmhub's DeepSeek-V3 (multi-head latent attention, sigmoid-routed experts) against
transformers on the same random weights.

Each case is a tiny random ``DeepseekV3ForCausalLM``: all layers dense (MLA alone), a dense
layer then sparse ones with group-limited routing and a random correction bias, and a one-step
query projection with rotate-half RoPE and DeepSeek's YaRN (mscale on the softmax scale). Each
is checked for logits under both kernels (with left padding), greedy generation with every
cache (one prompt and a left-padded batch), and an exact export round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import lmhub
import lmhub.hf
from lmhub.nn.attention import ATTN_IMPLS
from lmhub.nn.kv_cache import StaticKVCache
from lmhub.nn.mla import MultiHeadLatentAttention
from tests.oracle.hf_models import save_tiny_hf
from tests.oracle.parity import (
    ATOL,
    GENERATION_SETTINGS,
    assert_export_round_trips,
    assert_greedy_generation_matches,
    assert_logits_match,
    match_hf_kernel,
    max_diff,
)

pytest.importorskip("transformers")

VOCAB = 160
INIT_STD = 0.2  # weights large enough that greedy decoding does not repeat one token

MLA_FIELDS: dict[str, Any] = dict(
    num_key_value_heads=4,
    q_lora_rank=24,
    kv_lora_rank=16,
    qk_nope_head_dim=16,
    qk_rope_head_dim=8,
    v_head_dim=12,
    moe_intermediate_size=32,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_group=4,
    topk_group=2,
    n_shared_experts=1,
)

CASES: dict[str, dict[str, Any]] = {
    # Every layer dense: latent attention with interleaved RoPE on its own.
    "dense": dict(first_k_dense_replace=2),
    # One dense layer, two sparse ones (group-limited sigmoid routing, shared expert).
    "moe": dict(num_hidden_layers=3, first_k_dense_replace=1),
    # Queries in one projection, rotate-half RoPE, YaRN with mscale on the softmax scale,
    # routing without renormalisation.
    "qproj-yarn": dict(
        num_hidden_layers=3,
        first_k_dense_replace=1,
        q_lora_rank=None,
        rope_interleave=False,
        norm_topk_prob=False,
        routed_scaling_factor=1.5,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 10_000.0,
            "factor": 4.0,
            "original_max_position_embeddings": 16,
            "mscale": 0.8,
            "mscale_all_dim": 0.8,
        },
    ),
}


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    hf = save_tiny_hf(
        directory, "deepseek_v3", initializer_range=INIT_STD, **{**MLA_FIELDS, **CASES[case]}
    )
    # The correction bias is a buffer transformers leaves at zero: make it matter.
    path = directory / "model.safetensors"
    tensors = load_file(path)
    with torch.no_grad():
        for name, buffer in hf.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buffer.uniform_(-0.1, 0.1)
                tensors[name] = buffer.clone()
    save_file(tensors, path, metadata={"format": "pt"})
    hf.generation_config.eos_token_id = None  # nothing stops early
    model = lmhub.load_model(directory, config=lmhub_config or None).eval()
    assert type(model).__name__ == "DeepseekV3Model"
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    match_hf_kernel(hf, attn_impl)
    assert_logits_match(hf, model, vocab=VOCAB, seq=20)


def test_the_correction_bias_changes_the_logits(tmp_path: Path) -> None:
    _hf, model = load_case(tmp_path, "moe")
    ids = torch.randint(0, VOCAB, (1, 12))
    with torch.no_grad():
        before = model(ids)
        model.layers[1].ffn.router.e_score_correction_bias.zero_()
        assert max_diff(model(ids), before) > 1e-4


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
    assert_export_round_trips(
        hf,
        model,
        tmp_path,
        model_type="deepseek_v3",
        config_keys=("q_lora_rank", "kv_lora_rank", "first_k_dense_replace", "rope_interleave"),
        vocab=VOCAB,
    )


def test_the_cache_holds_the_latent_and_the_rotary_key_only(tmp_path: Path) -> None:
    hf, model = load_case(tmp_path, "dense")
    ids = torch.randint(0, VOCAB, (2, 7))
    cache = StaticKVCache(16)
    with torch.no_grad():
        full = model(ids)
        model(ids[:, :4], cache=cache)
        step = model(ids[:, 4:], cache=cache)
    assert max_diff(step, full[:, 4:]) <= ATOL
    attn = model.layers[0].attn
    assert isinstance(attn, MultiHeadLatentAttention)
    keys, values = cache._keys[0], cache._values[0]
    assert keys.shape == (2, 1, 16, hf.config.kv_lora_rank)  # the normed latent
    assert values.shape == (2, 1, 16, hf.config.qk_rope_head_dim)  # the shared rotary key
