"""Qwen3 (dense) configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

QWEN3_FAMILY: Final = "qwen3"


@dataclass(kw_only=True)
class Qwen3Config(LlamaConfig):
    """Holds the shape and options of a dense Qwen3 decoder (Qwen team, 2025).

    Qwen3 is a Llama whose query and key heads are RMS-normalised before RoPE (``qk_norm``),
    with heads of a width of their own (``head_dim`` 128 in every published size) and no
    projection biases. Its optional sliding window is Qwen2's (``max_window_layers``). The
    fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    qk_norm: bool = True
    """Whether each query and key head is RMS-normalised over its width before RoPE (always,
    in transformers' Qwen3)."""


qwen3_archs: Final = ArchRegistry(QWEN3_FAMILY, Qwen3Config)


@qwen3_archs.register("qwen3_tiny")
def qwen3_tiny() -> Qwen3Config:
    """A ~1.6M-parameter Qwen3 for tests and demos (byte-level vocabulary; the second of two
    layers slides over 8 positions)."""
    return Qwen3Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        layer_types=["full", "sliding"],
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@qwen3_archs.register("qwen3_0_6b")
def qwen3_0_6b() -> Qwen3Config:
    """Qwen3 0.6B (tied embeddings)."""
    return Qwen3Config(
        model_dim=1024,
        num_layers=28,
        num_heads=16,
        num_kv_heads=8,
        head_dim=128,
        ffn_inner_dim=3072,
        vocab_size=151_936,
        max_seq_len=40_960,
        rope_theta=1_000_000.0,
        norm_eps=1e-6,
        tie_embeddings=True,
        bos_token_id=151_643,  # <|endoftext|>
        eos_token_id=151_645,  # <|im_end|>
    )


@qwen3_archs.register("qwen3_1_7b")
def qwen3_1_7b() -> Qwen3Config:
    """Qwen3 1.7B (tied embeddings)."""
    config = qwen3_0_6b()
    config.model_dim, config.ffn_inner_dim = 2048, 6144
    return config


@qwen3_archs.register("qwen3_4b")
def qwen3_4b() -> Qwen3Config:
    """Qwen3 4B (tied embeddings)."""
    config = qwen3_0_6b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2560, 36, 9728
    config.num_heads = 32
    return config


@qwen3_archs.register("qwen3_8b")
def qwen3_8b() -> Qwen3Config:
    """Qwen3 8B."""
    config = qwen3_4b()
    config.model_dim, config.ffn_inner_dim = 4096, 12288
    config.tie_embeddings = False
    return config


@qwen3_archs.register("qwen3_14b")
def qwen3_14b() -> Qwen3Config:
    """Qwen3 14B."""
    config = qwen3_8b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 40, 17408
    config.num_heads = 40
    return config


@qwen3_archs.register("qwen3_32b")
def qwen3_32b() -> Qwen3Config:
    """Qwen3 32B."""
    config = qwen3_14b()
    config.num_layers, config.ffn_inner_dim = 64, 25600
    config.num_heads = 64
    return config
