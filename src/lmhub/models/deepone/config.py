"""DeepOne configuration and presets: a DeepNet-normed ALiBi decoder with GQA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_common

DEEPONE_FAMILY: Final = "deepone"


@dataclass(kw_only=True)
class DeepOneConfig:
    """Holds the shape and options of a DeepOne decoder.

    DeepOne is a post-norm transformer with DeepNet residual scaling (Wang et al., 2022, "DeepNet:
    Scaling Transformers to 1,000 Layers"), ALiBi attention biases (Press et al., 2022) with
    trainable per-head slopes, grouped-query attention and a ReLU-gated feed-forward. It has no
    position table, so ``max_seq_len`` is a training length, not a limit.
    """

    model_dim: int = 768
    """The width of the residual stream."""

    num_layers: int = 12
    """The number of decoder layers ``N``; it sets the DeepNet ``alpha`` and ``beta``."""

    num_heads: int = 12
    """The number of query heads (each with its own ALiBi slope)."""

    num_kv_heads: int = 4
    """The number of key/value heads; fewer than ``num_heads`` is GQA, 1 is MQA."""

    head_dim: int | None = None
    """The width of each head; ``None`` means ``model_dim // num_heads``."""

    ffn_inner_dim: int = 2048
    """The inner width of the ReLU-gated feed-forward."""

    vocab_size: int = 32000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 2048
    """The sequence length the model is trained on; ALiBi lets it run on longer ones."""

    norm_eps: float = 1e-5
    """The epsilon of the layer norms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights and on both residual branches in training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    trainable_alibi: bool = True
    """Whether the ALiBi slopes are learned (they start at the standard geometric slopes)."""

    init_std: float = 0.02
    """The standard deviation of the normal init of the embeddings (and an untied output)."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id."""

    eos_token_id: int | None = None
    """The end-of-sequence token id."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    def resolved_head_dim(self) -> int:
        """Return ``head_dim``, or ``model_dim // num_heads`` when it is unset."""
        return self.head_dim if self.head_dim is not None else self.model_dim // self.num_heads

    @property
    def deepnet_alpha(self) -> float:
        """The residual scale ``(2N)^(1/4)`` of a decoder-only DeepNet with ``N`` layers."""
        return (2.0 * self.num_layers) ** 0.25

    @property
    def deepnet_beta(self) -> float:
        """The init gain ``(8N)^(-1/4)`` of the feed-forward, value and output projections."""
        return (8.0 * self.num_layers) ** -0.25

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        check_common(self)


deepone_archs: Final = ArchRegistry(DEEPONE_FAMILY, DeepOneConfig)


@deepone_archs.register("deepone_tiny")
def deepone_tiny() -> DeepOneConfig:
    """A ~3M-parameter DeepOne for tests and demos (byte-level vocabulary of 259 tokens)."""
    return DeepOneConfig(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=2,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@deepone_archs.register("deepone_100m")
def deepone_100m() -> DeepOneConfig:
    """A ~100M-parameter DeepOne: 12 layers of width 768, 12 query and 4 key/value heads."""
    return DeepOneConfig()
