"""Qwen2 / Qwen2.5 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

QWEN2_FAMILY: Final = "qwen2"


@dataclass(kw_only=True)
class Qwen2Config(LlamaConfig):
    """Holds the shape and options of a Qwen2 or Qwen2.5 decoder (Qwen team, 2024).

    Qwen2 is a Llama with biases on the q/k/v projections but not on the output one
    (``attn_bias=True``, ``attn_output_bias=False``). Its optional sliding window covers the
    layers from ``max_window_layers`` on (HF ``use_sliding_window``); lmhub states that as
    ``sliding_window`` plus ``layer_types``. The published checkpoints attend fully everywhere.
    The fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    attn_bias: bool = True
    """Whether the q/k/v projections have biases (always, in transformers' Qwen2)."""

    attn_output_bias: bool | None = False
    """Whether the output projection has a bias (never, in transformers' Qwen2)."""


qwen2_archs: Final = ArchRegistry(QWEN2_FAMILY, Qwen2Config)

_ENDOFTEXT: Final = 151_643  # <|endoftext|>: the base models' BOS and EOS


@qwen2_archs.register("qwen2_tiny")
def qwen2_tiny() -> Qwen2Config:
    """A ~1.6M-parameter Qwen2 for tests and demos (byte-level vocabulary; the second of two
    layers slides over 8 positions, as ``max_window_layers=1`` would say)."""
    return Qwen2Config(
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


@qwen2_archs.register("qwen2_0_5b")
def qwen2_0_5b() -> Qwen2Config:
    """Qwen2 0.5B (tied embeddings)."""
    return Qwen2Config(
        model_dim=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
        ffn_inner_dim=4864,
        vocab_size=151_936,
        max_seq_len=131_072,
        rope_theta=1_000_000.0,
        norm_eps=1e-6,
        tie_embeddings=True,
        bos_token_id=_ENDOFTEXT,
        eos_token_id=_ENDOFTEXT,
    )


@qwen2_archs.register("qwen2_1_5b")
def qwen2_1_5b() -> Qwen2Config:
    """Qwen2 1.5B (tied embeddings)."""
    config = qwen2_0_5b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 1536, 28, 8960
    config.num_heads = 12
    return config


@qwen2_archs.register("qwen2_7b")
def qwen2_7b() -> Qwen2Config:
    """Qwen2 7B."""
    config = qwen2_0_5b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 3584, 28, 18944
    config.num_heads, config.num_kv_heads = 28, 4
    config.vocab_size = 152_064
    config.tie_embeddings = False
    return config


@qwen2_archs.register("qwen25_0_5b")
def qwen25_0_5b() -> Qwen2Config:
    """Qwen2.5 0.5B: Qwen2 0.5B's shape with a 32K context."""
    config = qwen2_0_5b()
    config.max_seq_len = 32_768
    return config


@qwen2_archs.register("qwen25_1_5b")
def qwen25_1_5b() -> Qwen2Config:
    """Qwen2.5 1.5B: Qwen2 1.5B's shape."""
    return qwen2_1_5b()


@qwen2_archs.register("qwen25_3b")
def qwen25_3b() -> Qwen2Config:
    """Qwen2.5 3B (tied embeddings, 32K context)."""
    config = qwen25_0_5b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2048, 36, 11008
    config.num_heads = 16
    return config


@qwen2_archs.register("qwen25_7b")
def qwen25_7b() -> Qwen2Config:
    """Qwen2.5 7B: Qwen2 7B's shape."""
    return qwen2_7b()


@qwen2_archs.register("qwen25_14b")
def qwen25_14b() -> Qwen2Config:
    """Qwen2.5 14B."""
    config = qwen2_7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 48, 13824
    config.num_heads, config.num_kv_heads = 40, 8
    config.norm_eps = 1e-5
    return config


@qwen2_archs.register("qwen25_32b")
def qwen25_32b() -> Qwen2Config:
    """Qwen2.5 32B."""
    config = qwen25_14b()
    config.num_layers, config.ffn_inner_dim = 64, 27648
    return config


@qwen2_archs.register("qwen25_72b")
def qwen25_72b() -> Qwen2Config:
    """Qwen2.5 72B."""
    config = qwen2_7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 8192, 80, 29568
    config.num_heads, config.num_kv_heads = 64, 8
    return config
