"""lmhub's Llama against transformers' LlamaForCausalLM on the same random weights (the oracle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from tests.oracle.hf_models import save_tiny_hf_llama
from tests.oracle.parity import ATOL, assert_loads_like, max_diff

CASES: dict[str, dict[str, Any]] = {
    "gqa": {},
    "mha": {"num_key_value_heads": 4},
    "mqa": {"num_key_value_heads": 1},
    "tied": {"tie_word_embeddings": True},
    "head_dim": {"head_dim": 32},
    "bias": {"attention_bias": True, "mlp_bias": True},
    "linear": {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
    "dynamic": {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}},
    "llama3": {
        "rope_parameters": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
            "rope_theta": 500000.0,
        }
    },
    "yarn": {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 16,
            "rope_theta": 10000.0,
        }
    },
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_logits_match_transformers(tmp_path: Path, case: str, attn_impl: str) -> None:
    hf = save_tiny_hf_llama(tmp_path, **CASES[case])
    model = lmhub.load_model(tmp_path, config={"attn_impl": attn_impl}).eval()
    # Longer than max_position_embeddings (64) for the dynamic case, so scaling really kicks in.
    seq = 80 if case == "dynamic" else 24
    ids = torch.randint(0, 160, (2, seq))
    with torch.no_grad():
        want = hf(ids).logits
        got = model(ids)
    assert got.shape == want.shape == (2, seq, 160)
    assert max_diff(got, want) <= ATOL


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_left_padded_batch_matches_transformers(tmp_path: Path, attn_impl: str) -> None:
    hf = save_tiny_hf_llama(tmp_path)
    model = lmhub.load_model(tmp_path, config=[f"attn_impl={attn_impl}"]).eval()
    ids = torch.randint(0, 160, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :4] = 0
    mask[2, :7] = 0
    with torch.no_grad():
        want = hf(ids, attention_mask=mask).logits
        got = model(ids, attention_mask=mask)
    real = mask.bool()
    assert max_diff(got[real], want[real]) <= ATOL


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("safe", [True, False])
def test_sharded_checkpoints_load(tmp_path: Path, mmap: bool, safe: bool) -> None:
    hf = save_tiny_hf_llama(tmp_path, safe=safe, max_shard_size="60KB")
    index = "model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
    assert (tmp_path / index).is_file()
    assert_loads_like(hf, tmp_path, vocab=160, shape=(1, 16), mmap=mmap)


def test_bf16_checkpoint_keeps_declared_dtype(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path, dtype=torch.bfloat16)
    model = lmhub.load_model(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    model32 = lmhub.load_model(tmp_path, dtype="float32")
    assert {p.dtype for p in model32.parameters()} == {torch.float32}


def test_tied_model_shares_storage(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path, tie_word_embeddings=True)
    model = lmhub.load_model(tmp_path)
    assert model.lm_head.weight is model.embed.weight


def test_transformers4_config_spelling(tmp_path: Path) -> None:
    """A config.json written with rope_theta/rope_scaling and torch_dtype (transformers 4)."""
    import json

    hf = save_tiny_hf_llama(
        tmp_path,
        rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 5000.0},
    )
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    data.pop("rope_parameters", None)
    data.pop("dtype", None)
    data.update(
        rope_theta=5000.0, rope_scaling={"type": "linear", "factor": 2.0}, torch_dtype="float32"
    )
    path.write_text(json.dumps(data))
    model = lmhub.load_model(tmp_path)
    assert model.config.rope_theta == 5000.0 and model.config.rope_scaling.kind == "linear"
    ids = torch.randint(0, 160, (1, 20))
    with torch.no_grad():
        assert max_diff(model(ids), hf(ids).logits) <= ATOL
