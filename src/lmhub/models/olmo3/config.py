"""OLMo 3 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.gemma2.config import alternating_layer_types
from lmhub.models.olmo2.config import Olmo2Config
from lmhub.nn.rope import RopeScaling

OLMO3_FAMILY: Final = "olmo3"

OLMO3_PERIOD: Final = 4
"""OLMo 3's layer pattern: three sliding-window layers, then a full-attention one."""


@dataclass(kw_only=True)
class Olmo3Config(Olmo2Config):
    """Holds the shape and options of an OLMo 3 decoder (OLMo Team, 2025).

    OLMo 3 is OLMo 2 with sliding-window attention on three layers of every four
    (``layer_types``; every fourth layer attends fully). Its long-context RoPE scaling (YaRN)
    applies to the full-attention layers only: the sliding layers rotate with plain RoPE of
    base ``rope_local_theta``. The other fields are
    :class:`~lmhub.models.olmo2.config.Olmo2Config`'s.
    """

    sliding_window: int | None = 4096
    """How many positions a sliding-window layer sees, the current one included."""


olmo3_archs: Final = ArchRegistry(OLMO3_FAMILY, Olmo3Config)


@olmo3_archs.register("olmo3_tiny")
def olmo3_tiny() -> Olmo3Config:
    """A ~1.6M-parameter OLMo 3 for tests and demos (byte-level vocabulary; the first of two
    layers slides over 8 positions)."""
    return Olmo3Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        layer_types=alternating_layer_types(2, 2),
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@olmo3_archs.register("olmo3_7b")
def olmo3_7b() -> Olmo3Config:
    """OLMo 3 7B (``Olmo-3-1025-7B``): a 65K context through YaRN on the full layers."""
    return Olmo3Config(
        model_dim=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        ffn_inner_dim=11008,
        vocab_size=100_278,
        max_seq_len=65_536,
        rope_theta=500_000.0,
        rope_scaling=RopeScaling(
            kind="yarn",
            factor=8.0,
            original_max_seq_len=8192,
            beta_fast=32.0,
            beta_slow=1.0,
            attention_factor=1.2079441541679836,
        ),
        rope_local_theta=500_000.0,
        norm_eps=1e-6,
        sliding_window=4096,
        layer_types=alternating_layer_types(32, OLMO3_PERIOD),
        bos_token_id=None,
        eos_token_id=100_257,
        pad_token_id=100_277,
    )


@olmo3_archs.register("olmo3_32b")
def olmo3_32b() -> Olmo3Config:
    """OLMo 3 32B (``Olmo-3-1125-32B``; GQA with 8 key/value heads)."""
    config = olmo3_7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 64, 27648
    config.num_heads, config.num_kv_heads = 40, 8
    config.layer_types = alternating_layer_types(64, OLMO3_PERIOD)
    return config
