"""The same sharding over NCCL on GPUs: TP=2 logits equal one GPU's and a backward runs. Runs where
two GPUs exist; skips cleanly elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lmhub import get_model_hub, save_checkpoint
from lmhub.parallel import setup_gangs
from tests.parallel.launch import launch

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.device_count() >= 2 and dist.is_nccl_available()),
    reason="needs two CUDA GPUs and NCCL",
)


def _worker(root: str) -> None:
    gangs = setup_gangs(tp_size=2)  # NCCL, this rank's GPU
    assert gangs.device.type == "cuda"
    hub = get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", {"vocab_size": 256, "bos_token_id": 0,
                                                 "eos_token_id": 1, "pad_token_id": 2})  # fmt: skip
    full = hub.load_custom_model(root, config, device=gangs.device, progress=False)
    split = hub.load_custom_model(root, config, gangs=gangs, progress=False)
    ids = torch.tensor([[5, 17, 33, 2, 9, 11, 40, 3]], device=gangs.device)
    with torch.no_grad():
        torch.testing.assert_close(split(ids), full(ids), atol=1e-4, rtol=1e-4)
    loss = F.cross_entropy(split(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert all(p.grad is not None for p in split.parameters())


def test_tp2_over_nccl_matches_one_gpu(tmp_path: Path) -> None:
    hub = get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", {"vocab_size": 256, "bos_token_id": 0,
                                                 "eos_token_id": 1, "pad_token_id": 2})  # fmt: skip
    torch.manual_seed(0)
    save_checkpoint(tmp_path, hub.create_new_model(config, device="cpu"))
    launch(_worker, str(tmp_path))
