"""Gemma 3 (text) configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.gemma2.config import Gemma2Config, alternating_layer_types
from lmhub.nn.rope import RopeScaling

GEMMA3_FAMILY: Final = "gemma3"

GEMMA3_PERIOD: Final = 6
"""Every sixth Gemma 3 layer is global, the other five slide (transformers'
``sliding_window_pattern``)."""


@dataclass(kw_only=True)
class Gemma3Config(Gemma2Config):
    """Holds the shape and options of a Gemma 3 text decoder (Gemma Team, 2025).

    Gemma 3 is Gemma 2 with per-head q/k RMSNorms (``qk_norm``, with the ``1 + weight`` scale),
    five sliding layers to each global one (``layer_types``), no softcaps, and a RoPE base per
    kind of layer: ``rope_local_theta`` (unscaled) on the sliding layers, ``rope_theta`` with
    ``rope_scaling`` (linear x8 from 4B up) on the global ones. These are the text towers; the
    4B, 12B and 27B checkpoints also hold a vision encoder lmhub does not model. The other
    fields are :class:`~lmhub.models.gemma2.config.Gemma2Config`'s.
    """

    vocab_size: int = 262_208
    """The number of token embeddings and output logits."""

    max_seq_len: int = 131_072
    """The longest sequence the model was trained for (HF ``max_position_embeddings``)."""

    qk_norm: bool = True
    """Whether each query and key head is RMS-normalised before RoPE (always, in Gemma 3)."""

    attn_logit_softcap: float | None = None
    """Cap the attention scores at ``c * tanh(s / c)``; ``None`` (Gemma 3's) for no cap."""

    final_logit_softcap: float | None = None
    """Cap the output logits at ``c * tanh(logits / c)``; ``None`` (Gemma 3's) for no cap."""

    rope_theta: float = 1_000_000.0
    """The RoPE base of the global (full-attention) layers."""

    rope_local_theta: float | None = 10_000.0
    """The RoPE base of the sliding-window layers (HF ``rope_local_base_freq``)."""


gemma3_archs: Final = ArchRegistry(GEMMA3_FAMILY, Gemma3Config)


@gemma3_archs.register("gemma3_tiny")
def gemma3_tiny() -> Gemma3Config:
    """A ~1.5M-parameter Gemma 3 for tests and demos (byte-level vocabulary; the first of two
    layers slides over 8 positions with its own RoPE base)."""
    return Gemma3Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        query_pre_attn_scalar=32,
        sliding_window=8,
        layer_types=alternating_layer_types(2, 2),
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gemma3_archs.register("gemma3_1b")
def gemma3_1b() -> Gemma3Config:
    """Gemma 3 1B (text only; 32K context, no RoPE scaling)."""
    return Gemma3Config(
        model_dim=1152,
        num_layers=26,
        num_heads=4,
        num_kv_heads=1,
        head_dim=256,
        ffn_inner_dim=6912,
        vocab_size=262_144,
        max_seq_len=32_768,
        sliding_window=512,
        layer_types=alternating_layer_types(26, GEMMA3_PERIOD),
    )


@gemma3_archs.register("gemma3_4b")
def gemma3_4b() -> Gemma3Config:
    """Gemma 3 4B, text tower (128K context: linear RoPE scaling x8 on the global layers)."""
    return Gemma3Config(
        model_dim=2560,
        num_layers=34,
        num_heads=8,
        num_kv_heads=4,
        head_dim=256,
        ffn_inner_dim=10240,
        sliding_window=1024,
        rope_scaling=RopeScaling(kind="linear", factor=8.0),
        layer_types=alternating_layer_types(34, GEMMA3_PERIOD),
    )


@gemma3_archs.register("gemma3_12b")
def gemma3_12b() -> Gemma3Config:
    """Gemma 3 12B, text tower."""
    config = gemma3_4b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 3840, 48, 15360
    config.num_heads, config.num_kv_heads = 16, 8
    config.layer_types = alternating_layer_types(48, GEMMA3_PERIOD)
    return config


@gemma3_archs.register("gemma3_27b")
def gemma3_27b() -> Gemma3Config:
    """Gemma 3 27B, text tower (128-wide heads; scores scaled by model_dim / num_heads)."""
    config = gemma3_4b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5376, 62, 21504
    config.num_heads, config.num_kv_heads, config.head_dim = 32, 16, 128
    config.query_pre_attn_scalar = 168
    config.layer_types = alternating_layer_types(62, GEMMA3_PERIOD)
    return config
