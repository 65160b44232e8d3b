"""gpt-oss configuration and the published architecture presets."""

from dataclasses import dataclass, field
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LayerType, LlamaConfig
from lmhub.nn.moe import MoeConfig
from lmhub.nn.rope import RopeScaling

GPT_OSS_FAMILY: Final = "gpt_oss"


def gpt_oss_moe(experts: int, inner: int = 2880) -> MoeConfig:
    """The experts of gpt-oss: four per token, biased router and experts, clamped SwiGLU."""
    return MoeConfig(
        num_experts=experts,
        top_k=4,
        expert_inner_dim=inner,
        router_bias=True,
        expert_bias=True,
        swiglu_limit=7.0,
        swiglu_alpha=1.702,
        aux_loss_coef=0.001,
    )


def gpt_oss_rope() -> RopeScaling:
    """gpt-oss's YaRN: 32 times the 4096-position pre-training context, unrounded ramp."""
    return RopeScaling(
        kind="yarn",
        factor=32.0,
        original_max_seq_len=4096,
        beta_fast=32.0,
        beta_slow=1.0,
        truncate=False,
    )


def alternating_layers(num_layers: int) -> list[LayerType]:
    """Sliding-window layers first, then full, alternating (gpt-oss's pattern)."""
    return ["sliding" if i % 2 == 0 else "full" for i in range(num_layers)]


@dataclass(kw_only=True)
class GptOssConfig(LlamaConfig):
    """Holds the shape and options of a gpt-oss decoder (OpenAI, 2025).

    gpt-oss is a Llama-layout decoder with biases on every attention projection, a learned
    sink logit per head (``attn_sinks``), layers that alternate between a 128-position sliding
    window and full attention, YaRN RoPE, and mixture-of-experts feed-forwards whose router
    and experts have biases and whose experts use a clamped SwiGLU (``moe.swiglu_limit``). The
    fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    attn_bias: bool = True
    """Whether the q/k/v/o projections have biases (always, in gpt-oss)."""

    attn_sinks: bool = True
    """Whether each head has a learned sink logit (always, in gpt-oss)."""

    moe: MoeConfig | None = field(default_factory=lambda: gpt_oss_moe(32))
    """The mixture of experts of every layer."""


gpt_oss_archs: Final = ArchRegistry(GPT_OSS_FAMILY, GptOssConfig)


@gpt_oss_archs.register("gpt_oss_tiny")
def gpt_oss_tiny() -> GptOssConfig:
    """A ~1.7M-parameter gpt-oss for tests and demos (byte-level vocabulary, 8 experts, top 2,
    sliding then full layer over a window of 8)."""
    moe = gpt_oss_moe(8, 256)
    moe.top_k = 2
    return GptOssConfig(
        model_dim=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        ffn_inner_dim=256,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        layer_types=alternating_layers(2),
        rope_theta=150_000.0,
        rope_scaling=gpt_oss_rope(),
        moe=moe,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gpt_oss_archs.register("gpt_oss_20b")
def gpt_oss_20b() -> GptOssConfig:
    """gpt-oss-20b (20.9B parameters; 3.6B active per token, the input embedding aside)."""
    return GptOssConfig(
        model_dim=2880,
        num_layers=24,
        num_heads=64,
        num_kv_heads=8,
        head_dim=64,
        ffn_inner_dim=2880,
        vocab_size=201_088,
        max_seq_len=131_072,
        rope_theta=150_000.0,
        rope_scaling=gpt_oss_rope(),
        sliding_window=128,
        layer_types=alternating_layers(24),
        moe=gpt_oss_moe(32),
        bos_token_id=199_998,  # <|startoftext|>
        eos_token_id=200_002,  # <|return|>
        pad_token_id=199_999,  # <|endoftext|>
    )


@gpt_oss_archs.register("gpt_oss_120b")
def gpt_oss_120b() -> GptOssConfig:
    """gpt-oss-120b (116.8B parameters; 5.1B active per token, the input embedding aside)."""
    config = gpt_oss_20b()
    config.num_layers = 36
    config.layer_types = alternating_layers(36)
    config.moe = gpt_oss_moe(128)
    return config
