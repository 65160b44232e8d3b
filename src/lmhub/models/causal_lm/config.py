"""Configuration and presets of the plain causal LM: the original transformer, decoder only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_common

CAUSAL_LM_FAMILY: Final = "causal_lm"


@dataclass(kw_only=True)
class CausalLMConfig:
    """Holds the shape and options of a plain decoder-only transformer.

    The layers are those of Vaswani et al. (2017), "Attention Is All You Need", without the
    encoder: post-LayerNorm (``x = LN(x + sublayer(x))``), multi-head causal attention, a ReLU
    MLP, and sinusoidal absolute positions added to the token embeddings.
    """

    model_dim: int = 768
    """The width of the residual stream (``d_model``)."""

    num_layers: int = 12
    """The number of decoder layers."""

    num_heads: int = 12
    """The number of attention heads; each has width ``model_dim // num_heads``."""

    ffn_inner_dim: int = 3072
    """The inner width of the ReLU MLP (``d_ff``)."""

    vocab_size: int = 32000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 1024
    """The sequence length the model is trained on. Sinusoids are computed on the fly, so longer
    inputs run, but positions beyond this were never seen in training."""

    norm_eps: float = 1e-5
    """The epsilon of the layer norms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on the embeddings, attention weights and both residual branches
    during training (0.1 in the paper)."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    scale_embeddings: bool = True
    """Whether token embeddings are multiplied by ``sqrt(model_dim)`` before the positions are
    added, as in the paper."""

    pos_theta: float = 10_000.0
    """The base of the sinusoid wavelengths (10000 in the paper)."""

    attn_bias: bool = True
    """Whether the q/k/v/o projections have biases."""

    ffn_bias: bool = True
    """Whether the MLP projections have biases."""

    init_std: float = 0.02
    """The standard deviation of the normal init of linear and embedding weights."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id."""

    eos_token_id: int | None = None
    """The end-of-sequence token id."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.errors import ConfigError

        check_common(self)
        if self.model_dim % 2:
            raise ConfigError(
                f"'model_dim' ({self.model_dim}) must be even: the sinusoids come in sin/cos "
                "pairs.",
                field="model_dim",
                value=self.model_dim,
            )
        if self.pos_theta <= 1.0:
            raise ConfigError(
                f"'pos_theta' must be greater than 1, not {self.pos_theta}.",
                field="pos_theta",
                value=self.pos_theta,
            )


causal_lm_archs: Final = ArchRegistry(CAUSAL_LM_FAMILY, CausalLMConfig)


@causal_lm_archs.register("causal_lm_tiny")
def causal_lm_tiny() -> CausalLMConfig:
    """A ~3M-parameter plain transformer for tests and demos (byte-level vocabulary of 259)."""
    return CausalLMConfig(
        model_dim=256,
        num_layers=4,
        num_heads=4,
        ffn_inner_dim=1024,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@causal_lm_archs.register("causal_lm_100m")
def causal_lm_100m() -> CausalLMConfig:
    """A ~110M-parameter plain transformer: 12 layers of width 768 with 12 heads."""
    return CausalLMConfig()
