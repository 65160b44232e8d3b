"""Qwen3-MoE configuration and the published architecture presets."""

from dataclasses import dataclass, field
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.qwen3.config import Qwen3Config
from lmhub.nn.moe import MoeConfig

QWEN3_MOE_FAMILY: Final = "qwen3_moe"


def _qwen3_moe(experts: int, top_k: int, inner: int) -> MoeConfig:
    return MoeConfig(num_experts=experts, top_k=top_k, expert_inner_dim=inner, aux_loss_coef=0.001)


@dataclass(kw_only=True)
class Qwen3MoeConfig(Qwen3Config):
    """Holds the shape and options of a Qwen3 mixture-of-experts decoder (Qwen team, 2025).

    Qwen3-MoE is dense Qwen3 (per-head q/k norms, 128-wide heads) with each feed-forward a
    mixture of many narrow SwiGLU experts (128, eight per token, renormalised softmax top-k, no
    shared expert). ``moe.dense_layers`` (HF ``mlp_only_layers``) keep a dense feed-forward of
    ``ffn_inner_dim``. The fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    moe: MoeConfig | None = field(default_factory=lambda: _qwen3_moe(128, 8, 768))
    """The mixture of experts of the sparse layers."""


qwen3_moe_archs: Final = ArchRegistry(QWEN3_MOE_FAMILY, Qwen3MoeConfig)


@qwen3_moe_archs.register("qwen3_moe_tiny")
def qwen3_moe_tiny() -> Qwen3MoeConfig:
    """A ~2M-parameter Qwen3-MoE for tests and demos (byte-level vocabulary, 8 experts, top 2;
    the first of two layers is dense)."""
    moe = _qwen3_moe(8, 2, 128)
    moe.dense_layers = [0]
    return Qwen3MoeConfig(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        head_dim=None,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        moe=moe,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@qwen3_moe_archs.register("qwen3_30b_a3b")
def qwen3_30b_a3b() -> Qwen3MoeConfig:
    """Qwen3-30B-A3B (30.5B parameters, 3.3B active per token)."""
    return Qwen3MoeConfig(
        model_dim=2048,
        num_layers=48,
        num_heads=32,
        num_kv_heads=4,
        head_dim=128,
        ffn_inner_dim=6144,
        vocab_size=151_936,
        max_seq_len=40_960,
        rope_theta=1_000_000.0,
        norm_eps=1e-6,
        moe=_qwen3_moe(128, 8, 768),
        bos_token_id=151_643,  # <|endoftext|>
        eos_token_id=151_645,  # <|im_end|>
    )


@qwen3_moe_archs.register("qwen3_235b_a22b")
def qwen3_235b_a22b() -> Qwen3MoeConfig:
    """Qwen3-235B-A22B (235B parameters, 22B active per token)."""
    config = qwen3_30b_a3b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 4096, 94, 12288
    config.num_heads = 64
    config.moe = _qwen3_moe(128, 8, 1536)
    return config
