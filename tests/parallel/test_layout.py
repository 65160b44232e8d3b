"""Impossible layouts are errors that say what must divide what (no processes needed)."""

from __future__ import annotations

import pytest
import torch

from lmhub import get_model_hub
from lmhub.config import apply_overrides
from lmhub.errors import ConfigError, ParallelLayoutError
from lmhub.models.llama.tp import llama_tp_plan
from lmhub.parallel import Gang, Gangs, fake_gangs
from lmhub.parallel.setup import plan_layout
from lmhub.train.config import TrainConfig, check_parallel_train_config


def test_layouts_fill_the_world() -> None:
    assert plan_layout(8, tp_size=2).shape == (1, 4, 2)
    assert plan_layout(8, tp_size=2, dp_replicate=2).shape == (2, 2, 2)
    assert plan_layout(4, dp_shard=4).shape == (1, 4, 1)
    assert plan_layout(1).shape == (1, 1, 1)


@pytest.mark.parametrize(
    ("world", "kwargs", "match"),
    [
        (6, {"tp_size": 4}, "world size 6 must be a multiple of tp_size x dp_replicate"),
        (4, {"tp_size": 2, "dp_shard": 3}, r"2 x 3 x 1|1 x 3 x 2"),
        (4, {"tp_size": 0}, "tp_size is 0"),
        (4, {"dp_shard": 0}, "dp_shard is 0"),
    ],
)
def test_impossible_layouts(world: int, kwargs: dict, match: str) -> None:
    with pytest.raises(ParallelLayoutError, match=match):
        plan_layout(world, **kwargs)


def test_llama_plan_needs_tp_to_divide_heads() -> None:
    config = get_model_hub("llama").get_arch_config("llama_tiny")  # 8 heads, 4 kv heads
    assert llama_tp_plan(config, 4)["layers.*.attn.k_proj"] == "colwise"
    assert "embed" not in llama_tp_plan(config, 2)  # 259 tokens do not split in two
    with pytest.raises(ParallelLayoutError, match=r"num_kv_heads \(4\) must be a multiple") as e:
        llama_tp_plan(config, 8)
    assert (e.value.field, e.value.value, e.value.divisor) == ("num_kv_heads", 4, 8)
    config.vocab_size = 256
    assert llama_tp_plan(config, 2)["lm_head"] == "vocab_output"
    config.tie_embeddings = True
    assert "lm_head" not in llama_tp_plan(config, 2)


def test_families_without_a_plan_refuse_tp() -> None:
    # A two-rank TP gang is checked before any process group is touched.
    tp = Gang(rank=0, size=2, device=torch.device("cpu"))
    gangs = Gangs(root=tp, dp=fake_gangs().dp, tp=tp)
    hub = get_model_hub("causal_lm")
    with pytest.raises(ParallelLayoutError, match="'causal_lm' family declares no tensor-parallel"):
        hub.create_new_model(hub.get_arch_config("causal_lm_tiny"), gangs=gangs)


def test_fake_gangs_keep_their_api() -> None:
    gangs = fake_gangs("cpu")
    assert (gangs.root.size, gangs.dp.size, gangs.tp.size, gangs.tp.rank) == (1, 1, 1, 0)
    assert gangs.tp.group is None and gangs.tp.mesh is None
    assert gangs.device == torch.device("cpu")


def test_every_dense_family_declares_a_plan_where_it_differs() -> None:
    olmo2 = get_model_hub("olmo2")
    plan = olmo2.family.tp_plan(olmo2.get_arch_config("olmo2_tiny"), 2)
    assert plan["layers.*.attn.k_proj"] == "colwise_gather"  # the k norm spans every head
    assert plan["layers.*.attn.o_proj"] == "rowwise_from_replicated"
    qwen3 = get_model_hub("qwen3")
    plan = qwen3.family.tp_plan(qwen3.get_arch_config("qwen3_tiny"), 2)
    assert plan["layers.*.attn.k_proj"] == "colwise"  # per-head norms: each rank its heads
    gpt2 = get_model_hub("gpt2")
    plan = gpt2.family.tp_plan(gpt2.get_arch_config("gpt2_tiny"), 2)
    assert (plan["layers.*.ffn.fc1"], plan["layers.*.ffn.fc2"]) == ("colwise", "rowwise")
    assert "lm_head" not in plan  # tied
    for name in ("gemma", "gemma2", "gemma3", "phi3", "granite", "olmo3", "smollm3", "gpt_neox"):
        assert get_model_hub(name).family.tp_plan is not None, name
    with pytest.raises(ParallelLayoutError, match="ffn_inner_dim"):
        gpt2.family.tp_plan(gpt2.get_model_config("gpt2_tiny", {"ffn_inner_dim": 30}), 4)


def test_train_config_parallel_section() -> None:
    config = apply_overrides(
        TrainConfig(), ["parallel.tp_size=2", "parallel.mixed_precision=bf16", "batch_size=6"]
    )
    assert (config.parallel.tp_size, config.parallel.dp_shard) == (2, -1)
    check_parallel_train_config(config, dp_size=2)
    check_parallel_train_config(config, dp_size=3)
    with pytest.raises(ConfigError, match="'batch_size' is 6, which does not split over 4") as e:
        check_parallel_train_config(config, dp_size=4)
    assert e.value.field == "batch_size"
    lora = apply_overrides(config, ["lora.rank=4"])
    with pytest.raises(ConfigError, match="'lora' is not supported with a sharded model"):
        check_parallel_train_config(lora, dp_size=1)  # bf16 mixed precision shards at dp=1
    with pytest.raises(ConfigError, match="mixed_precision"):
        apply_overrides(TrainConfig(), ["parallel.mixed_precision=fp8"])


def test_compile_is_refused_with_tensor_parallelism_only() -> None:
    fsdp = apply_overrides(TrainConfig(), ["compile=true", "batch_size=4"])
    check_parallel_train_config(fsdp, dp_size=2)  # FSDP2 alone compiles (test_train_parallel)
    tp = apply_overrides(fsdp, ["parallel.tp_size=2"])
    with pytest.raises(ConfigError, match=r"'compile' is true with parallel\.tp_size=2") as e:
        check_parallel_train_config(tp, dp_size=1)
    assert e.value.field == "compile"
