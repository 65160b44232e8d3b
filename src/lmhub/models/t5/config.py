"""T5 configuration and the T5 v1.1 / Flan-T5 presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common, check_positive

T5_FAMILY: Final = "t5"


@dataclass(kw_only=True)
class T5Config:
    """Holds the shape and options of a T5 encoder-decoder (Raffel et al., 2020).

    Pre-norm layers with a bias-free RMS norm, no attention score scaling, relative position
    buckets learned per head in the first layer of each stack and shared by the rest, and a
    gated feed-forward (GELU in T5 v1.1 and Flan-T5). The original T5's plain ReLU feed-forward
    is not implemented.
    """

    model_dim: int = 512
    """The width of the residual stream (HF ``d_model``)."""

    num_layers: int = 8
    """The number of encoder layers (HF ``num_layers``)."""

    num_decoder_layers: int = 8
    """The number of decoder layers (HF ``num_decoder_layers``)."""

    num_heads: int = 6
    """The number of attention heads (HF ``num_heads``)."""

    head_dim: int | None = 64
    """The width of each head (HF ``d_kv``); ``None``: ``model_dim // num_heads``."""

    ffn_inner_dim: int = 1024
    """The inner width of the feed-forward (HF ``d_ff``)."""

    activation: str = "gelu_tanh"
    """The activation of the feed-forward's gate (an :data:`lmhub.nn.ffn.ACTIVATIONS` name):
    T5 v1.1's ``gelu_new`` is the tanh approximation."""

    vocab_size: int = 32128
    """The number of token embeddings and output logits."""

    max_seq_len: int = 512
    """The sequence length the model was trained on (HF ``n_positions``); relative positions
    impose no hard limit."""

    num_buckets: int = 32
    """The number of relative position buckets (HF ``relative_attention_num_buckets``)."""

    max_distance: int = 128
    """Offsets from this on share the last bucket (HF ``relative_attention_max_distance``)."""

    norm_eps: float = 1e-6
    """The epsilon of the RMS norms (HF ``layer_norm_epsilon``)."""

    tie_embeddings: bool = False
    """Whether the output projection shares the token embeddings (T5 v1.1 and Flan-T5 are
    untied)."""

    scale_logits: bool = False
    """Whether the decoder output is scaled by ``model_dim ** -0.5`` before the output
    projection, as the original (tied) T5 does (HF ``scale_decoder_outputs``; older configs
    imply it from ``tie_word_embeddings``)."""

    dropout_p: float = 0.0
    """The dropout on embeddings, attention weights and sublayer outputs in training (HF
    ``dropout_rate``; 0.1 in pre-training, 0 for fine-tuning is common)."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused) or ``eager`` (reference)."""

    init_factor: float = 1.0
    """The scale of T5's init (HF ``initializer_factor``)."""

    pad_token_id: int | None = 0
    """The padding token id; it also starts the decoder by default."""

    eos_token_id: int | None = 1
    """The end-of-sequence token id."""

    bos_token_id: int | None = None
    """The beginning-of-sequence token id (T5 has none)."""

    decoder_start_token_id: int = 0
    """The first decoder input of every target (T5 uses the padding id)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_positive(self, ("num_decoder_layers", "num_buckets", "max_distance"))
        check_choice(self, "activation", ACTIVATIONS)

    def resolved_head_dim(self) -> int:
        """The width of each head."""
        return self.head_dim if self.head_dim is not None else self.model_dim // self.num_heads


t5_archs: Final = ArchRegistry(T5_FAMILY, T5Config)


@t5_archs.register("t5_tiny")
def t5_tiny() -> T5Config:
    """A ~2.5M-parameter T5 for tests and demos (byte-level vocabulary of 259 tokens)."""
    return T5Config(
        model_dim=128,
        num_layers=4,
        num_decoder_layers=4,
        num_heads=4,
        head_dim=None,
        ffn_inner_dim=512,
        vocab_size=259,
        pad_token_id=258,
        eos_token_id=257,
        bos_token_id=256,
        decoder_start_token_id=258,
    )


@t5_archs.register("t5_v1_1_small")
def t5_v1_1_small() -> T5Config:
    """T5 v1.1 small (77M): ``google/t5-v1_1-small``."""
    return T5Config()


@t5_archs.register("t5_v1_1_base")
def t5_v1_1_base() -> T5Config:
    """T5 v1.1 base (248M): ``google/t5-v1_1-base``."""
    return T5Config(
        model_dim=768, num_layers=12, num_decoder_layers=12, num_heads=12, ffn_inner_dim=2048
    )


@t5_archs.register("t5_v1_1_large")
def t5_v1_1_large() -> T5Config:
    """T5 v1.1 large (783M): ``google/t5-v1_1-large``."""
    return T5Config(
        model_dim=1024, num_layers=24, num_decoder_layers=24, num_heads=16, ffn_inner_dim=2816
    )


@t5_archs.register("t5_v1_1_xl")
def t5_v1_1_xl() -> T5Config:
    """T5 v1.1 XL (2.85B): ``google/t5-v1_1-xl``."""
    return T5Config(
        model_dim=2048, num_layers=24, num_decoder_layers=24, num_heads=32, ffn_inner_dim=5120
    )


# Flan-T5 is T5 v1.1 instruction-tuned: the same shapes, so each preset is its v1.1 twin.


@t5_archs.register("flan_t5_small")
def flan_t5_small() -> T5Config:
    """Flan-T5 small (77M): ``google/flan-t5-small``."""
    return t5_v1_1_small()


@t5_archs.register("flan_t5_base")
def flan_t5_base() -> T5Config:
    """Flan-T5 base (248M): ``google/flan-t5-base``."""
    return t5_v1_1_base()


@t5_archs.register("flan_t5_large")
def flan_t5_large() -> T5Config:
    """Flan-T5 large (783M): ``google/flan-t5-large``."""
    return t5_v1_1_large()


@t5_archs.register("flan_t5_xl")
def flan_t5_xl() -> T5Config:
    """Flan-T5 XL (2.85B): ``google/flan-t5-xl``."""
    return t5_v1_1_xl()
