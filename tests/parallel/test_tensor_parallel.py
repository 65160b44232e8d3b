"""Tensor parallelism over 2 gloo processes gives the single-process logits and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.distributed.tensor import DTensor

from lmhub import get_model_hub, save_checkpoint
from lmhub.errors import ParallelLayoutError
from lmhub.generation import generate
from lmhub.hf.export import export
from lmhub.parallel import setup_gangs
from tests.parallel.launch import launch

CASES = {
    # Untied, vocabulary divisible by 2: embedding and head are split by vocabulary too.
    "llama": (
        "llama_tiny",
        {"vocab_size": 256, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2},
    ),
    # Biases on q/k/v, a sliding layer, 259 tokens: embedding and head stay whole.
    "qwen2": ("qwen2_tiny", {}),
    # Tied embeddings, (1 + w) norms, sandwich norms, attention and final logit soft-caps.
    "gemma2": ("gemma2_tiny", {}),
    # Per-head q/k norms, local RoPE bases.
    "gemma3": ("gemma3_tiny", {}),
    # Global layers of wider heads whose values are the keys, value norms, per-layer
    # embeddings (whole on each rank), the last two layers on the first two's keys and values.
    "gemma4": (
        "gemma4_tiny",
        {
            "layer_types": ["sliding", "full", "sliding", "full"],
            "num_kv_shared_layers": 2,
            "double_wide_shared_ffn": True,
            "attn_k_eq_v": True,
            "num_global_kv_heads": 2,
        },
    ),
    # Norms over the whole q/k projection: q/k/v gathered, o from the whole input.
    "olmo2": ("olmo2_tiny", {}),
    # Loaded from its HF export, whose fused qkv and gate_up the weight map splits.
    "phi3": ("phi3_tiny", {}),
    # Fused Conv1D c_attn in the HF export, a two-layer GELU MLP, tied embeddings.
    "gpt2": ("gpt2_tiny", {}),
    # Parallel residual, partial rotary, an untied vocabulary of 260 split in two.
    "gpt_neox": ("gpt_neox_tiny", {"vocab_size": 260}),
}
HF_EXPORTED = {"phi3", "gpt2"}


def _config(family: str):
    arch, overrides = CASES[family]
    hub = get_model_hub(family)
    return hub, hub.get_model_config(arch, {**overrides, "attn_impl": "eager"})


def _tp_worker(root: str) -> None:
    gangs = setup_gangs(tp_size=2)
    assert (gangs.tp.size, gangs.dp.size, gangs.root.size) == (2, 1, 2)
    for family in CASES:
        hub, config = _config(family)
        path = Path(root) / family
        full = hub.load_custom_model(path, config, device="cpu", progress=False)
        split = hub.load_custom_model(path, config, gangs=gangs, progress=False)
        q = split.layers[0].attn.q_proj.weight
        assert isinstance(q, DTensor)
        assert q.to_local().shape[0] == full.layers[0].attn.q_proj.weight.shape[0] // 2
        ids = torch.tensor([[5, 17, 33, 2, 9, 11, 40, 3, 8, 12, 60, 7]])
        with torch.no_grad():
            want = full(ids)
            got = split(ids)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # The static cache takes each rank's head count from the keys it is given; the fused
        # decode-time copies are skipped for DTensor weights (and used for the reference).
        tokens = generate(split, ids[:, :4], max_new_tokens=6)
        ref = generate(full, ids[:, :4], max_new_tokens=6)
        assert torch.equal(tokens, ref)
    # GQA: one key-value head cannot be split over two ranks.
    hub, config = _config("llama")
    config.num_kv_heads = 1
    with pytest.raises(ParallelLayoutError, match="num_kv_heads"):
        hub.create_new_model(config, gangs=gangs)


@pytest.mark.slow
def test_tp2_matches_one_process(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for family in CASES:
        hub, config = _config(family)
        model = hub.create_new_model(config, device="cpu")
        if family in HF_EXPORTED:
            export(model, tmp_path / family)
        else:
            save_checkpoint(tmp_path / family, model)
    launch(_tp_worker, str(tmp_path))
