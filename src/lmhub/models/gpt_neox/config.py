"""GPT-NeoX configuration and the Pythia presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_choice, check_common
from lmhub.nn.rope import RopeScaling, rotary_dims

GPT_NEOX_FAMILY: Final = "gpt_neox"


@dataclass(kw_only=True)
class GPTNeoXConfig:
    """Holds the shape and options of a GPT-NeoX decoder (Black et al., 2022; Pythia, Biderman
    et al., 2023).

    Pre-LayerNorm layers with biases, RoPE on a leading fraction of each head, attention and MLP
    side by side on the same input (``use_parallel_residual``) or one after the other, a GELU MLP
    and an untied output projection.
    """

    model_dim: int = 512
    """The width of the residual stream (HF ``hidden_size``)."""

    num_layers: int = 6
    """The number of decoder layers."""

    num_heads: int = 8
    """The number of attention heads, each ``model_dim // num_heads`` wide."""

    ffn_inner_dim: int = 2048
    """The inner width of the MLP (HF ``intermediate_size``)."""

    vocab_size: int = 50304
    """The number of token embeddings and output logits (padded beyond the tokenizer's)."""

    max_seq_len: int = 2048
    """The longest sequence the model was trained for (HF ``max_position_embeddings``)."""

    rope_theta: float = 10_000.0
    """The RoPE base frequency (HF ``rotary_emb_base``)."""

    rope_scaling: RopeScaling | None = None
    """How RoPE frequencies are scaled for longer contexts; ``None`` for no scaling."""

    partial_rotary_factor: float = 0.25
    """The fraction of each head's leading dimensions RoPE rotates (HF ``rotary_pct``); the rest
    carry no position."""

    use_parallel_residual: bool = True
    """``x + attn(ln1(x)) + mlp(ln2(x))`` when true (Pythia); else ``h = x + attn(ln1(x))`` then
    ``h + mlp(ln2(h))``."""

    norm_eps: float = 1e-5
    """The epsilon of the LayerNorms (HF ``layer_norm_eps``)."""

    activation: str = "gelu"
    """The MLP activation (an :data:`lmhub.nn.ffn.ACTIVATIONS` name; HF ``hidden_act``)."""

    attn_bias: bool = True
    """Whether the attention projections have biases (HF ``attention_bias``)."""

    tie_embeddings: bool = False
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights during training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    init_std: float = 0.02
    """The standard deviation of the normal init of linear and embedding weights."""

    bos_token_id: int | None = 0
    """The beginning-of-sequence token id (``<|endoftext|>`` in Pythia's tokenizer)."""

    eos_token_id: int | list[int] | None = 0
    """The end-of-sequence token id."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    def resolved_head_dim(self) -> int:
        """Return the width of each head."""
        return self.model_dim // self.num_heads

    def rotary_dim(self) -> int:
        """Return how many leading dimensions of each head RoPE rotates."""
        return rotary_dims(self.resolved_head_dim(), self.partial_rotary_factor)

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.errors import ConfigError
        from lmhub.nn.ffn import ACTIVATIONS

        check_common(self)
        check_choice(self, "activation", ACTIVATIONS)
        fraction = self.partial_rotary_factor
        if not (isinstance(fraction, int | float) and 0 < fraction <= 1):
            raise ConfigError(
                f"'partial_rotary_factor' must be in (0, 1], not {fraction!r}.",
                field="partial_rotary_factor",
                value=fraction,
            )
        if self.rotary_dim() < 2 or self.rotary_dim() % 2:
            raise ConfigError(
                f"'partial_rotary_factor' {fraction} of the head width "
                f"{self.resolved_head_dim()} rotates {self.rotary_dim()} dimensions, but RoPE "
                "needs a positive even number. Change the factor or the head width.",
                field="partial_rotary_factor",
                value=fraction,
            )
        if self.rope_scaling is not None:
            try:
                self.rope_scaling.validate()
            except ConfigError as exc:
                field = f"rope_scaling.{exc.field}"
                raise ConfigError(f"'{field}': {exc}", field=field, value=exc.value) from None


gpt_neox_archs: Final = ArchRegistry(GPT_NEOX_FAMILY, GPTNeoXConfig)


@gpt_neox_archs.register("gpt_neox_tiny")
def gpt_neox_tiny() -> GPTNeoXConfig:
    """A ~3.7M-parameter GPT-NeoX for tests and demos (byte-level vocabulary of 259 tokens)."""
    return GPTNeoXConfig(
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


def _pythia(dim: int, layers: int, heads: int, vocab: int = 50304) -> GPTNeoXConfig:
    # Every Pythia model: 4x MLP, RoPE on a quarter of each head, parallel residual, 2K context.
    return GPTNeoXConfig(
        model_dim=dim, num_layers=layers, num_heads=heads, ffn_inner_dim=4 * dim, vocab_size=vocab
    )


@gpt_neox_archs.register("pythia_70m")
def pythia_70m() -> GPTNeoXConfig:
    """Pythia 70M."""
    return _pythia(512, 6, 8)


@gpt_neox_archs.register("pythia_160m")
def pythia_160m() -> GPTNeoXConfig:
    """Pythia 160M."""
    return _pythia(768, 12, 12)


@gpt_neox_archs.register("pythia_410m")
def pythia_410m() -> GPTNeoXConfig:
    """Pythia 410M."""
    return _pythia(1024, 24, 16)


@gpt_neox_archs.register("pythia_1b")
def pythia_1b() -> GPTNeoXConfig:
    """Pythia 1B."""
    return _pythia(2048, 16, 8)


@gpt_neox_archs.register("pythia_1_4b")
def pythia_1_4b() -> GPTNeoXConfig:
    """Pythia 1.4B."""
    return _pythia(2048, 24, 16)


@gpt_neox_archs.register("pythia_2_8b")
def pythia_2_8b() -> GPTNeoXConfig:
    """Pythia 2.8B."""
    return _pythia(2560, 32, 32)


@gpt_neox_archs.register("pythia_6_9b")
def pythia_6_9b() -> GPTNeoXConfig:
    """Pythia 6.9B."""
    return _pythia(4096, 32, 32, vocab=50432)


@gpt_neox_archs.register("pythia_12b")
def pythia_12b() -> GPTNeoXConfig:
    """Pythia 12B."""
    return _pythia(5120, 36, 40, vocab=50688)
