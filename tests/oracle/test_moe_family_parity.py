"""lmhub's Mixtral, Qwen3-MoE and gpt-oss against transformers on the same random weights.

Each case builds a tiny random transformers model (per-expert checkpoints as transformers 5
writes them for Mixtral and Qwen3-MoE; fused, transposed, interleaved experts for gpt-oss),
saves it, and checks lmhub's load of it: logits under every attention kernel (with left
padding), greedy generation with each KV cache, and an exact HF -> lmhub -> HF round trip
that transformers loads natively. A case also loads transformers' fused in-memory layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import lmhub
from lmhub.nn.attention import ATTN_IMPLS
from lmhub.nn.moe import MoEFeedForward
from tests.oracle.parity import (
    assert_export_round_trips,
    assert_greedy_generation_matches,
    assert_logits_match,
    load_tiny_pair,
    ring_buffer_lengths,
)

pytest.importorskip("transformers")

VOCAB = 160
WINDOW = 6
INIT_STD = 0.2  # weights large enough that greedy decoding does not repeat one token

# case -> (model_type, lmhub family, HF config overrides)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mixtral": ("mixtral", "mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "mixtral-window": (
        "mixtral",
        "mixtral",
        {"num_local_experts": 3, "num_experts_per_tok": 2, "sliding_window": WINDOW},
    ),
    # Renormalised top-3 of 8 narrow experts, the middle of three layers dense.
    "qwen3_moe": (
        "qwen3_moe",
        "qwen3_moe",
        {
            "num_hidden_layers": 3,
            "num_experts": 8,
            "num_experts_per_tok": 3,
            "moe_intermediate_size": 32,
            "norm_topk_prob": True,
            "mlp_only_layers": [1],
            "head_dim": 32,
        },
    ),
    "qwen3_moe-no-renorm": (
        "qwen3_moe",
        "qwen3_moe",
        {"num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 24},
    ),
    # Sliding then full layers, sinks, YaRN (unrounded ramp), biased clamped-SwiGLU experts.
    "gpt_oss": (
        "gpt_oss",
        "gpt_oss",
        {
            "num_hidden_layers": 3,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "head_dim": 16,
            "sliding_window": WINDOW,
            "swiglu_limit": 1.0,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "yarn",
                "rope_theta": 150_000.0,
                "factor": 32.0,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "truncate": False,
                "original_max_position_embeddings": 128,
            },
        },
    ),
}


def load_case(directory: Path, case: str, **lmhub_config: Any) -> tuple[Any, Any]:
    model_type, family, overrides = CASES[case]
    hf, model = load_tiny_pair(
        directory, model_type, lmhub_config=lmhub_config, initializer_range=INIT_STD, **overrides
    )
    assert lmhub.get_family(family).model_class is type(model)
    return hf, model


@pytest.mark.parametrize("attn_impl", ATTN_IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf, model = load_case(tmp_path, case, attn_impl=attn_impl)
    assert_logits_match(hf, model, vocab=VOCAB, seq=4 * WINDOW)


def test_layers_are_what_the_config_says(tmp_path: Path) -> None:
    _, model = load_case(tmp_path / "q", "qwen3_moe")
    assert [isinstance(layer.ffn, MoEFeedForward) for layer in model.layers] == [True, False, True]
    _, model = load_case(tmp_path / "g", "gpt_oss")
    assert [layer.attn.sliding_window for layer in model.layers] == [WINDOW, None, WINDOW]
    assert all(layer.attn.sinks is not None for layer in model.layers)
    assert model.config.rope_scaling.truncate is False


@pytest.mark.parametrize("cache", ["static", "dynamic", None])
@pytest.mark.parametrize("case", list(CASES))
def test_greedy_generation_matches_transformers(
    tmp_path: Path, case: str, cache: str | None
) -> None:
    hf, model = load_case(tmp_path, case)
    lengths = ring_buffer_lengths(WINDOW)
    assert_greedy_generation_matches(hf, model, vocab=VOCAB, cache=cache, **lengths)


@pytest.mark.parametrize("case", list(CASES))
def test_export_round_trips_exactly(tmp_path: Path, case: str) -> None:
    hf, model = load_case(tmp_path / "hf", case)
    assert_export_round_trips(
        hf,
        model,
        tmp_path,
        model_type=CASES[case][0],
        config_keys=("sliding_window", "layer_types", "num_experts_per_tok", "mlp_only_layers"),
        vocab=VOCAB,
        seq=3 * WINDOW,
        missing_as_none=True,
    )


@pytest.mark.parametrize("case", ["mixtral", "qwen3_moe"])
def test_fused_in_memory_layout_loads(tmp_path: Path, case: str) -> None:
    """transformers 5's own state dict (mlp.gate, fused gate_up_proj) loads as well."""
    hf, model = load_case(tmp_path / "hf", case)
    fused = tmp_path / "fused"
    fused.mkdir()
    (fused / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, fused / "model.safetensors")
    assert any(k.endswith("experts.gate_up_proj") for k in hf.state_dict())
    again = lmhub.load_model(fused).eval()
    for (name, a), (_, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_gpt_oss_mxfp4_checkpoint_dequantises_on_load(tmp_path: Path) -> None:
    """A released-style checkpoint (experts as MXFP4 blocks and scales) loads as the dense
    checkpoint of transformers' own dequantisation of the same blocks."""
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    hf, _ = load_case(tmp_path / "hf", "gpt_oss")
    state = load_file(tmp_path / "hf" / "model.safetensors")
    gen = torch.Generator().manual_seed(0)
    quantised, dense = dict(state), dict(state)
    for key in [k for k in state if k.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
        e, cols, rows = state[key].shape  # HF keeps [experts, in, out]
        blocks = torch.randint(0, 256, (e, rows, cols // 32, 16), generator=gen, dtype=torch.uint8)
        scales = torch.randint(120, 130, (e, rows, cols // 32), generator=gen, dtype=torch.uint8)
        del quantised[key]
        quantised[f"{key}_blocks"], quantised[f"{key}_scales"] = blocks, scales
        dense[key] = convert_moe_packed_tensors(blocks, scales, dtype=torch.bfloat16).float()
    config = (tmp_path / "hf" / "config.json").read_text()
    for name, tensors in (("q", quantised), ("d", dense)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(config)
        save_file(tensors, tmp_path / name / "model.safetensors")
    got, want = lmhub.load_model(tmp_path / "q"), lmhub.load_model(tmp_path / "d")
    for (name, a), (_, b) in zip(got.state_dict().items(), want.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(
        got.layers[0].ffn.experts.up_proj,
        hf.model.layers[0].mlp.experts.gate_up_proj.transpose(1, 2)[:, 1::2],
    )
