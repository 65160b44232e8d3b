"""ModernBERT configuration and the published architecture presets."""

import math
from dataclasses import dataclass
from typing import Final

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common, check_positive

MODERNBERT_FAMILY: Final = "modernbert"


@dataclass(kw_only=True)
class ModernBertConfig:
    """Holds the shape and options of a ModernBERT encoder (Warner et al., 2024).

    Pre-LayerNorm layers without biases (the first layer reads the normed embeddings as they
    are), RoPE with one base for global and one for local layers, global attention every
    ``global_attn_every_n_layers`` layers and a sliding window of ``local_attention`` tokens in
    the others, a GeGLU MLP, and a masked-LM head (dense, GELU, LayerNorm, then a vocabulary
    projection with a bias, tied to the token embeddings).
    """

    model_dim: int = 768
    """The width of the residual stream (HF ``hidden_size``)."""

    num_layers: int = 22
    """The number of encoder layers (HF ``num_hidden_layers``)."""

    num_heads: int = 12
    """The number of attention heads, each ``model_dim // num_heads`` wide."""

    ffn_inner_dim: int = 1152
    """The inner width of the GLU MLP (HF ``intermediate_size``; its fused ``Wi`` is twice it)."""

    vocab_size: int = 50368
    """The number of token embeddings and output logits."""

    max_seq_len: int = 8192
    """The longest sequence trained on (HF ``max_position_embeddings``); RoPE has no table."""

    norm_eps: float = 1e-5
    """The epsilon of the LayerNorms."""

    norm_bias: bool = False
    """Whether the LayerNorms have a bias."""

    activation: str = "gelu"
    """The GLU's activation (an :data:`lmhub.nn.ffn.ACTIVATIONS` name; HF ``hidden_activation``)."""

    global_attn_every_n_layers: int = 3
    """Layers ``0, n, 2n, ...`` attend globally, the others within ``local_attention``."""

    local_attention: int = 128
    """The sliding window of the local layers, both sides together: a token sees the tokens at
    most ``local_attention // 2`` positions away."""

    global_rope_theta: float = 160_000.0
    """The RoPE base of the global layers."""

    local_rope_theta: float = 10_000.0
    """The RoPE base of the local layers."""

    attn_bias: bool = False
    """Whether the attention projections have biases (HF ``attention_bias``)."""

    ffn_bias: bool = False
    """Whether the MLP projections have biases (HF ``mlp_bias``)."""

    head_bias: bool = False
    """Whether the masked-LM head's dense layer has a bias (HF ``classifier_bias``)."""

    head_activation: str = "gelu"
    """The masked-LM head's activation (HF ``classifier_activation``)."""

    decoder_bias: bool = True
    """Whether the vocabulary projection has a bias (HF ``decoder_bias``)."""

    tie_embeddings: bool = True
    """Whether the vocabulary projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights in training (HF ``attention_dropout``)."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused) or ``eager`` (reference)."""

    unpadded: bool = True
    """Whether a padded batch runs on its real tokens only, packed into one row in which each
    sequence attends to itself (what ModernBERT's reference does with varlen kernels): it saves
    the padding's share of the projections and MLPs. Padding positions then give zeros."""

    init_std: float = 0.02
    """The standard deviation of the truncated-normal init (HF ``initializer_range``); the
    projections that write the residual get ``init_std / sqrt(2 * num_layers)``."""

    init_cutoff_factor: float = 2.0
    """The init truncates at this many standard deviations (HF ``initializer_cutoff_factor``)."""

    pad_token_id: int | None = 50283
    """The padding token id (``[PAD]``)."""

    bos_token_id: int | None = 50281
    """The beginning-of-sequence token id (``[CLS]``)."""

    eos_token_id: int | list[int] | None = 50282
    """The end-of-sequence token id (``[SEP]``)."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_positive(self, ("global_attn_every_n_layers", "local_attention"))
        check_choice(self, "activation", ACTIVATIONS)
        check_choice(self, "head_activation", ACTIVATIONS)
        for name in ("global_rope_theta", "local_rope_theta", "init_cutoff_factor"):
            value = getattr(self, name)
            low = 0.0 if name == "init_cutoff_factor" else 1.0
            if not (isinstance(value, int | float) and math.isfinite(value) and value > low):
                raise ConfigError(
                    f"'{name}' must be a finite number above {low}, not {value!r}.",
                    field=name,
                    value=value,
                )
        if (self.model_dim // self.num_heads) % 2:
            raise ConfigError(
                f"RoPE needs an even head width, but model_dim / num_heads is "
                f"{self.model_dim // self.num_heads}. Change 'num_heads'.",
                field="num_heads",
                value=self.num_heads,
            )

    def is_global(self, layer: int) -> bool:
        """Whether layer ``layer`` attends globally (else within the local window)."""
        return layer % self.global_attn_every_n_layers == 0


modernbert_archs: Final = ArchRegistry(MODERNBERT_FAMILY, ModernBertConfig)


@modernbert_archs.register("modernbert_tiny")
def modernbert_tiny() -> ModernBertConfig:
    """A ~2.5M-parameter ModernBERT for tests and demos (byte-level vocabulary of 259 tokens)."""
    return ModernBertConfig(
        model_dim=256,
        num_layers=4,
        num_heads=4,
        ffn_inner_dim=384,
        vocab_size=259,
        max_seq_len=1024,
        local_attention=16,
        global_attn_every_n_layers=2,
        pad_token_id=258,
        bos_token_id=256,
        eos_token_id=257,
    )


@modernbert_archs.register("modernbert_base")
def modernbert_base() -> ModernBertConfig:
    """ModernBERT-base (149M)."""
    return ModernBertConfig()


@modernbert_archs.register("modernbert_large")
def modernbert_large() -> ModernBertConfig:
    """ModernBERT-large (395M)."""
    return ModernBertConfig(model_dim=1024, num_layers=28, num_heads=16, ffn_inner_dim=2624)
