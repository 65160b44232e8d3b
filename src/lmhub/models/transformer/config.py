"""Configuration of the original encoder-decoder Transformer as fairseq2 ships it, and presets
(fairseq2's ``base`` and ``big``, and NLLB's dense shapes built on ``base`` as fairseq2 does).

Preset names are global in lmhub (a bare name resolves to its family), so fairseq2's ``base``
and ``big`` are ``transformer_base`` and ``transformer_big`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common, check_positive
from lmhub.nn.encdec_layer import NORM_ORDERS

TRANSFORMER_FAMILY: Final = "transformer"


@dataclass(kw_only=True)
class TransformerConfig:
    """Holds the shape and options of an encoder-decoder Transformer (Vaswani et al., 2017).

    LayerNorm layers (post-norm as in the paper, or pre-norm as in NLLB), multi-head attention
    with biases, a ReLU MLP, token embeddings scaled by ``sqrt(model_dim)`` plus sinusoidal
    positions. The defaults are fairseq2's ``base`` architecture.
    """

    model_dim: int = 512
    """The width of the residual stream."""

    num_layers: int = 6
    """The number of encoder layers."""

    num_decoder_layers: int = 6
    """The number of decoder layers."""

    num_heads: int = 8
    """The number of attention heads of the encoder layers."""

    num_decoder_heads: int = 8
    """The number of attention heads of the decoder layers (self- and cross-attention)."""

    ffn_inner_dim: int = 2048
    """The inner width of the ReLU MLP."""

    vocab_size: int = 32_768
    """The target vocabulary: the decoder's embeddings and output logits."""

    source_vocab_size: int | None = None
    """The source vocabulary of the encoder's embeddings; ``None``: ``vocab_size``."""

    share_embeddings: bool = True
    """Whether source and target share one embedding table (a joint vocabulary); needs the same
    source and target vocabulary size."""

    tie_embeddings: bool = True
    """Whether the output projection shares the decoder's embedding matrix."""

    max_seq_len: int = 1024
    """The longest sequence the model was trained on (sinusoids are computed on the fly)."""

    norm_order: str = "post"
    """``post``: ``LN(x + f(x))`` per sublayer (the paper); ``pre``: ``x + f(LN(x))`` with a
    final LayerNorm after each stack (NLLB)."""

    norm_eps: float = 1e-5
    """The epsilon of the LayerNorms."""

    activation: str = "relu"
    """The MLP activation (an :data:`lmhub.nn.ffn.ACTIVATIONS` name)."""

    dropout_p: float = 0.1
    """The dropout on embeddings, attention weights and sublayer outputs in training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused) or ``eager`` (reference)."""

    scale_embeddings: bool = True
    """Whether token embeddings are multiplied by ``sqrt(model_dim)``."""

    pos_offset: int = 2
    """The sinusoid position of the first real token: fairseq's legacy padding index (1) + 1,
    which fairseq2 and M2M100/NLLB keep so their checkpoints load."""

    pad_token_id: int | None = 0
    """The padding token id (fairseq2's vocabularies put it first)."""

    bos_token_id: int | None = 2
    """The beginning-of-sequence token id."""

    eos_token_id: int | None = 3
    """The end-of-sequence token id."""

    decoder_start_token_id: int = 3
    """The first decoder input of every target (fairseq starts targets with EOS)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_positive(self, ("num_decoder_layers", "num_decoder_heads", "source_vocab_size"))
        check_choice(self, "norm_order", NORM_ORDERS)
        check_choice(self, "activation", ACTIVATIONS)
        if self.model_dim % self.num_decoder_heads:
            raise ConfigError(
                f"'model_dim' ({self.model_dim}) is not divisible by 'num_decoder_heads' "
                f"({self.num_decoder_heads}). Change one of them.",
                field="num_decoder_heads",
                value=self.num_decoder_heads,
            )
        if self.pos_offset < 0:
            raise ConfigError(
                f"'pos_offset' must be at least 0, not {self.pos_offset}.",
                field="pos_offset",
                value=self.pos_offset,
            )
        if self.share_embeddings and self.source_vocab_size not in (None, self.vocab_size):
            raise ConfigError(
                f"'share_embeddings' is true, but 'source_vocab_size' ({self.source_vocab_size})"
                f" differs from 'vocab_size' ({self.vocab_size}): one table cannot serve both. "
                "Set share_embeddings=false or make the sizes equal.",
                field="share_embeddings",
                value=True,
            )

    def resolved_source_vocab_size(self) -> int:
        """The encoder's vocabulary size."""
        return self.source_vocab_size if self.source_vocab_size is not None else self.vocab_size


transformer_archs: Final = ArchRegistry(TRANSFORMER_FAMILY, TransformerConfig)


@transformer_archs.register("transformer_tiny")
def transformer_tiny() -> TransformerConfig:
    """A ~2.7M-parameter pre-norm transformer for tests and demos (byte-level vocabulary)."""
    return TransformerConfig(
        model_dim=128,
        num_layers=3,
        num_decoder_layers=3,
        num_heads=4,
        num_decoder_heads=4,
        ffn_inner_dim=512,
        vocab_size=259,
        norm_order="pre",
        dropout_p=0.0,
        pad_token_id=258,
        bos_token_id=256,
        eos_token_id=257,
        decoder_start_token_id=257,
    )


@transformer_archs.register("transformer_base")
def transformer_base() -> TransformerConfig:
    """fairseq2's ``base`` (Vaswani et al., 2017): 6 + 6 post-norm layers of width 512."""
    return TransformerConfig()


@transformer_archs.register("transformer_big")
def transformer_big() -> TransformerConfig:
    """fairseq2's ``big``: width 1024, 16 heads, MLP 4096, dropout 0.3."""
    config = transformer_base()
    config.model_dim = 1024
    config.num_heads = 16
    config.num_decoder_heads = 16
    config.ffn_inner_dim = 4096
    config.dropout_p = 0.3
    return config


@transformer_archs.register("nllb_dense_1b")
def nllb_dense_1b() -> TransformerConfig:
    """NLLB-200 dense 1.3B: ``base`` at width 1024, 24 + 24 pre-norm layers, MLP 8192, the
    256,206-token vocabulary (fairseq2's ids: pad 0, unk 1, bos 2, eos 3)."""
    config = transformer_base()
    config.model_dim = 1024
    config.vocab_size = 256_206
    config.num_layers = 24
    config.num_decoder_layers = 24
    config.num_heads = 16
    config.num_decoder_heads = 16
    config.ffn_inner_dim = 1024 * 8
    config.norm_order = "pre"
    return config


@transformer_archs.register("nllb_dense_600m")
def nllb_dense_600m() -> TransformerConfig:
    """NLLB-200 distilled 600M: ``nllb_dense_1b`` with 12 + 12 layers and MLP 4096."""
    config = nllb_dense_1b()
    config.num_layers = 12
    config.num_decoder_layers = 12
    config.ffn_inner_dim = 1024 * 4
    return config
