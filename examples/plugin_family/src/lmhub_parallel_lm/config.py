"""The parallel-LM configuration and its architecture presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_common

PARALLEL_LM_FAMILY: Final = "parallel_lm"


@dataclass(kw_only=True)
class ParallelLMConfig:
    """Holds the shape and options of a parallel-residual decoder.

    Each layer adds attention and a SwiGLU feed-forward computed from the same input,
    ``x + attn(norm1(x)) + ffn(norm2(x))`` (the parallel layer of GPT-J and PaLM), with RoPE,
    grouped-query attention and RMSNorm, all from lmhub's shared blocks.
    """

    model_dim: int = 512
    """The width of the residual stream."""

    num_layers: int = 8
    """The number of decoder layers."""

    num_heads: int = 8
    """The number of query heads; each is ``model_dim // num_heads`` wide."""

    num_kv_heads: int = 8
    """The number of key/value heads (fewer than ``num_heads``: grouped-query attention)."""

    ffn_inner_dim: int = 1376
    """The inner width of the SwiGLU feed-forward."""

    vocab_size: int = 32000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 2048
    """The longest sequence the RoPE table is built for."""

    rope_theta: float = 10_000.0
    """The RoPE base."""

    norm_eps: float = 1e-5
    """The epsilon of the RMSNorms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights during training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch's fused kernel), ``flex`` (flex attention) or
    ``eager`` (the reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    init_std: float = 0.02
    """The standard deviation of the normal init of every linear and embedding weight."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id."""

    eos_token_id: int | None = None
    """The end-of-sequence token id."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    @property
    def head_width(self) -> int:
        """The width of one attention head."""
        return self.model_dim // self.num_heads

    @property
    def q_width(self) -> int:
        """The width of the query projection (the fused checkpoint layout splits by it)."""
        return self.num_heads * self.head_width

    @property
    def kv_width(self) -> int:
        """The width of the key and of the value projection."""
        return self.num_kv_heads * self.head_width

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` naming the first field that does not
        describe a valid model (sizes, head layout, attention kernel, dropout)."""
        check_common(self)


parallel_lm_archs: Final = ArchRegistry(PARALLEL_LM_FAMILY, ParallelLMConfig)


@parallel_lm_archs.register("parallel_lm_tiny")
def parallel_lm_tiny() -> ParallelLMConfig:
    """A ~2.9M-parameter model for tests and demos (byte-level vocabulary of 259)."""
    return ParallelLMConfig(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@parallel_lm_archs.register("parallel_lm_42m")
def parallel_lm_42m() -> ParallelLMConfig:
    """A ~42M-parameter model: 8 layers of width 512 and a 32K vocabulary (tied)."""
    return ParallelLMConfig()
