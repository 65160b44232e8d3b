"""Single-head configuration and presets: one merged query-key attention head per layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common

SINGLE_HEAD_FAMILY: Final = "single_head"


@dataclass(kw_only=True)
class SingleHeadConfig:
    """Holds the shape and options of a single-head decoder.

    Every layer has one attention head of width ``model_dim``. With one head the query and key
    matrices only ever act as the product ``W_q W_k^T``, and the value and output matrices as
    ``W_v W_o`` (Elhage et al., 2021, "A Mathematical Framework for Transformer Circuits"), so
    the layer keeps one ``d x d`` query-key matrix and one ``d x d`` value matrix. Positions come
    from a trainable scalar ALiBi slope per layer. Layers are pre-LayerNorm with an MLP.
    """

    model_dim: int = 768
    """The width of the residual stream, which is also the width of the single head."""

    num_layers: int = 14
    """The number of decoder layers."""

    ffn_inner_dim: int = 3072
    """The inner width of the MLP."""

    activation: str = "gelu"
    """The MLP activation: ``gelu``, ``gelu_tanh``, ``relu`` or ``silu``."""

    vocab_size: int = 32000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 2048
    """The sequence length the model is trained on; ALiBi lets it run on longer ones."""

    norm_eps: float = 1e-5
    """The epsilon of the layer norms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights during training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    alibi_slope_init: float = 0.5
    """The initial ALiBi slope of every layer (the steepest standard slope of 8 heads)."""

    trainable_alibi: bool = True
    """Whether each layer's ALiBi slope is learned."""

    ffn_bias: bool = True
    """Whether the MLP projections have biases."""

    init_std: float = 0.02
    """The standard deviation of the normal init; projections that write into the residual
    stream (value, MLP output) use ``init_std / sqrt(2 * num_layers)``."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id."""

    eos_token_id: int | None = None
    """The end-of-sequence token id."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_choice(self, "activation", ACTIVATIONS)


single_head_archs: Final = ArchRegistry(SINGLE_HEAD_FAMILY, SingleHeadConfig)


@single_head_archs.register("single_head_tiny")
def single_head_tiny() -> SingleHeadConfig:
    """A ~3M-parameter single-head model for tests and demos (byte-level vocabulary of 259)."""
    return SingleHeadConfig(
        model_dim=256,
        num_layers=4,
        ffn_inner_dim=1024,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@single_head_archs.register("single_head_100m")
def single_head_100m() -> SingleHeadConfig:
    """A ~107M-parameter single-head model: 14 layers of width 768."""
    return SingleHeadConfig()
