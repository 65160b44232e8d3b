"""Gemma (1) configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

GEMMA_FAMILY: Final = "gemma"


@dataclass(kw_only=True)
class GemmaConfig(LlamaConfig):
    """Holds the shape and options of a Gemma decoder (Gemma Team, 2024).

    Gemma is a Llama whose RMSNorms scale by ``1 + weight`` (``norm_unit_offset``), whose token
    embeddings are multiplied by ``sqrt(model_dim)`` (``scale_embeddings``), whose feed-forward
    is GeGLU with the tanh GELU (``ffn_activation``), with 256-wide heads (``head_dim``) and tied
    embeddings.
    The fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s, with Gemma's defaults.
    """

    vocab_size: int = 256_000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 8192
    """The longest sequence the model was trained for (HF ``max_position_embeddings``)."""

    norm_eps: float = 1e-6
    """The epsilon of the RMS norms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix (always, in Gemma)."""

    ffn_activation: str = "gelu_tanh"
    """The activation of the gated feed-forward (GeGLU with the tanh approximation)."""

    norm_unit_offset: bool = True
    """Whether every RMSNorm scales by ``1 + weight`` (always, in Gemma)."""

    scale_embeddings: bool = True
    """Whether token embeddings are multiplied by ``sqrt(model_dim)`` (always, in Gemma)."""

    bos_token_id: int | None = 2
    """The beginning-of-sequence token id."""

    eos_token_id: int | list[int] | None = 1
    """The end-of-sequence token id."""

    pad_token_id: int | None = 0
    """The padding token id."""


gemma_archs: Final = ArchRegistry(GEMMA_FAMILY, GemmaConfig)


@gemma_archs.register("gemma_tiny")
def gemma_tiny() -> GemmaConfig:
    """A ~1.5M-parameter Gemma for tests and demos (byte-level vocabulary of 259 tokens)."""
    return GemmaConfig(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gemma_archs.register("gemma_2b")
def gemma_2b() -> GemmaConfig:
    """Gemma 2B (multi-query attention)."""
    return GemmaConfig(
        model_dim=2048,
        num_layers=18,
        num_heads=8,
        num_kv_heads=1,
        head_dim=256,
        ffn_inner_dim=16384,
    )


@gemma_archs.register("gemma_7b")
def gemma_7b() -> GemmaConfig:
    """Gemma 7B."""
    return GemmaConfig(
        model_dim=3072,
        num_layers=28,
        num_heads=16,
        num_kv_heads=16,
        head_dim=256,
        ffn_inner_dim=24576,
    )
