"""GPT-2 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common

GPT2_FAMILY: Final = "gpt2"


@dataclass(kw_only=True)
class GPT2Config:
    """Holds the shape and options of a GPT-2 decoder (Radford et al., 2019).

    Learned absolute positions, pre-LayerNorm layers with biases everywhere, a plain GELU MLP
    and an output projection tied to the token embeddings.
    """

    model_dim: int = 768
    """The width of the residual stream (HF ``n_embd``)."""

    num_layers: int = 12
    """The number of decoder layers (HF ``n_layer``)."""

    num_heads: int = 12
    """The number of attention heads, each ``model_dim // num_heads`` wide (HF ``n_head``)."""

    ffn_inner_dim: int = 3072
    """The inner width of the MLP (HF ``n_inner``; ``null`` there means 4 x ``n_embd``)."""

    vocab_size: int = 50257
    """The number of token embeddings and output logits."""

    max_seq_len: int = 1024
    """The number of learned positions, hence the longest sequence (HF ``n_positions``)."""

    norm_eps: float = 1e-5
    """The epsilon of the LayerNorms (HF ``layer_norm_epsilon``)."""

    activation: str = "gelu_tanh"
    """The MLP activation (an :data:`lmhub.nn.ffn.ACTIVATIONS` name); GPT-2's ``gelu_new`` is
    the tanh approximation."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights during training (HF ``attn_pdrop``)."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    init_std: float = 0.02
    """The standard deviation of the normal init; output projections get
    ``init_std / sqrt(2 * num_layers)`` as in GPT-2."""

    bos_token_id: int | None = 50256
    """The beginning-of-sequence token id (``<|endoftext|>``)."""

    eos_token_id: int | list[int] | None = 50256
    """The end-of-sequence token id (``<|endoftext|>``)."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_choice(self, "activation", ACTIVATIONS)


gpt2_archs: Final = ArchRegistry(GPT2_FAMILY, GPT2Config)


@gpt2_archs.register("gpt2_tiny")
def gpt2_tiny() -> GPT2Config:
    """A ~3.3M-parameter GPT-2 for tests and demos (byte-level vocabulary of 259 tokens)."""
    return GPT2Config(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        ffn_inner_dim=1024,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gpt2_archs.register("gpt2")
def gpt2() -> GPT2Config:
    """GPT-2 small (124M)."""
    return GPT2Config()


@gpt2_archs.register("gpt2_medium")
def gpt2_medium() -> GPT2Config:
    """GPT-2 medium (355M)."""
    return GPT2Config(model_dim=1024, num_layers=24, num_heads=16, ffn_inner_dim=4096)


@gpt2_archs.register("gpt2_large")
def gpt2_large() -> GPT2Config:
    """GPT-2 large (774M)."""
    return GPT2Config(model_dim=1280, num_layers=36, num_heads=20, ffn_inner_dim=5120)


@gpt2_archs.register("gpt2_xl")
def gpt2_xl() -> GPT2Config:
    """GPT-2 XL (1.5B; 1.56B counted)."""
    return GPT2Config(model_dim=1600, num_layers=48, num_heads=25, ffn_inner_dim=6400)
