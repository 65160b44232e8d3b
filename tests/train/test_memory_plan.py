"""``lmhub plan``'s per-rank memory against the peak that tensors really take in a training step
(on CPU: the profiler's running total of allocated tensor bytes, CUDA's max_memory_allocated
analogue)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from lmhub import get_model_hub
from lmhub.cli.main import main
from lmhub.errors import ModelNotKnownError, ParallelLayoutError
from lmhub.lm.cross_entropy import linear_cross_entropy
from lmhub.train.memory_plan import plan_memory
from lmhub.train.trainer import build_optimizer


def measured_peak(
    tmp_path: Path, family: str, arch: str, overrides: dict, *, precision: str, batch: int, seq: int
) -> int:
    """Peak bytes of live tensors over building the model and two AdamW steps."""
    hub = get_model_hub(family)
    config = hub.get_model_config(arch, overrides)
    ids = torch.randint(0, 250, (batch, seq), generator=torch.Generator().manual_seed(0))
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model = hub.create_new_model(config, device="cpu", dtype=dtype)
        optimizer = build_optimizer(
            list(model.parameters()), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8
        )
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                hidden = model(ids, return_hidden=True)
                loss = linear_cross_entropy(
                    hidden.flatten(0, 1), model.lm_head.weight, ids.flatten()
                )
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    # The total counts every live tensor of the process: start from what lived before.
    before = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in memory) - before


CASES = [
    ("llama", "llama_tiny", {"num_layers": 4}, "fp32", 8, 256),
    ("llama", "llama_tiny", {"model_dim": 512, "ffn_inner_dim": 1376}, "bf16", 4, 256),
    ("llama", "llama_tiny", {"num_layers": 2}, "bf16-mixed", 8, 256),
    ("gpt2", "gpt2_tiny", {"num_layers": 2}, "fp32", 4, 256),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("family", "arch", "overrides", "precision", "batch", "seq"), CASES)
def test_plan_is_within_a_third_of_the_measured_peak(
    tmp_path: Path, family: str, arch: str, overrides: dict, precision: str, batch: int, seq: int
) -> None:
    plan = plan_memory(
        arch, precision=precision, batch_size=batch, seq_len=seq, overrides=overrides
    )  # type: ignore[arg-type]
    peak = measured_peak(
        tmp_path, family, arch, overrides, precision=precision, batch=batch, seq=seq
    )
    ratio = peak / plan.total_bytes
    print(f"{arch} {precision} {batch}x{seq}: plan {plan.total_bytes / 2**20:.1f} MiB, "
          f"measured {peak / 2**20:.1f} MiB, ratio {ratio:.2f}")  # fmt: skip
    assert 0.75 < ratio < 1.33


def test_sharding_divides_what_each_rank_holds() -> None:
    one = plan_memory("llama_tiny", batch_size=8, seq_len=128, overrides={"vocab_size": 256})
    fsdp = plan_memory("llama_tiny", dp=2, batch_size=8, seq_len=128, overrides={"vocab_size": 256})
    tp = plan_memory("llama_tiny", tp=2, batch_size=8, seq_len=128, overrides={"vocab_size": 256})
    both = plan_memory(
        "llama_tiny", dp=2, tp=2, batch_size=8, seq_len=128, overrides={"vocab_size": 256}
    )
    assert one.rank_params == one.num_params and one.gathered_bytes == 0
    assert (
        fsdp.rank_params == -(-one.num_params // 2)
        or abs(fsdp.rank_params * 2 - one.num_params) < 64
    )
    assert fsdp.activation_bytes == pytest.approx(one.activation_bytes / 2, rel=0.01)
    assert fsdp.gathered_bytes > 0
    # TP splits everything but the norms (vocabulary 256: embedding and head too).
    norms = sum(p.numel() for n, p in get_model_hub("llama").create_new_model(
        get_model_hub("llama").get_model_config("llama_tiny", {"vocab_size": 256}), meta=True
    ).named_parameters() if "norm" in n)  # fmt: skip
    assert tp.rank_params == (one.num_params - norms) // 2 + norms
    assert tp.activation_bytes < one.activation_bytes
    assert both.rank_params < tp.rank_params and both.rank_params < fsdp.rank_params
    assert one.optimizer_bytes == 2 * one.param_bytes == 2 * one.grad_bytes
    bf16 = plan_memory("llama_tiny", precision="bf16", batch_size=8, seq_len=128)
    assert bf16.param_bytes * 2 == plan_memory("llama_tiny", batch_size=8, seq_len=128).param_bytes


def test_plan_refuses_what_cannot_be() -> None:
    with pytest.raises(ModelNotKnownError):
        plan_memory("no_such_arch")
    with pytest.raises(ParallelLayoutError, match="num_heads"):
        plan_memory("llama_tiny", tp=3)


def test_plan_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "llama_tiny", "--dp", "2", "--tp", "2", "--seq-len", "128"]) == 0
    out = capsys.readouterr().out
    for row in ("parameters", "gradients", "AdamW state", "activations", "total"):
        assert row in out
    assert main(["plan", "llama_tiny", "--precision", "fp8"]) == 2
