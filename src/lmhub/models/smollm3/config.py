"""SmolLM3 configuration and the published architecture preset."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

SMOLLM3_FAMILY: Final = "smollm3"

SMOLLM3_NOPE_INTERVAL: Final = 4
"""SmolLM3's default pattern: every fourth layer applies no RoPE."""


def interval_nope_layers(num_layers: int, interval: int) -> list[int]:
    """Return the NoPE layers of transformers' ``no_rope_layer_interval``: every
    ``interval``-th layer.

    Example:
        >>> interval_nope_layers(8, 4)
        [3, 7]
    """
    return [i for i in range(num_layers) if (i + 1) % interval == 0]


@dataclass(kw_only=True)
class SmolLM3Config(LlamaConfig):
    """Holds the shape and options of a SmolLM3 decoder (Hugging Face, 2025).

    SmolLM3 is a Llama with GQA and tied embeddings whose every fourth layer applies no
    positional encoding at all (``nope_layers``, "NoPE"). The fields are
    :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""


smollm3_archs: Final = ArchRegistry(SMOLLM3_FAMILY, SmolLM3Config)


@smollm3_archs.register("smollm3_tiny")
def smollm3_tiny() -> SmolLM3Config:
    """A ~1.5M-parameter SmolLM3 for tests and demos (byte-level vocabulary; the second of
    two layers has no RoPE)."""
    return SmolLM3Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=2,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        nope_layers=[1],
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@smollm3_archs.register("smollm3_3b")
def smollm3_3b() -> SmolLM3Config:
    """SmolLM3 3B (``HuggingFaceTB/SmolLM3-3B``): NoPE on every fourth layer, 64K context."""
    return SmolLM3Config(
        model_dim=2048,
        num_layers=36,
        num_heads=16,
        num_kv_heads=4,
        ffn_inner_dim=11008,
        vocab_size=128_256,
        max_seq_len=65_536,
        rope_theta=5_000_000.0,
        norm_eps=1e-6,
        nope_layers=interval_nope_layers(36, SMOLLM3_NOPE_INTERVAL),
        bos_token_id=128_000,
        eos_token_id=128_012,
        pad_token_id=128_004,
    )
