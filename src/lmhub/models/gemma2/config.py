"""Gemma 2 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.gemma.config import GemmaConfig
from lmhub.models.llama.config import LayerType

GEMMA2_FAMILY: Final = "gemma2"


def alternating_layer_types(num_layers: int, period: int) -> list[LayerType]:
    """Return Gemma's layer pattern: every ``period``-th layer full, the others sliding.

    Example:
        >>> alternating_layer_types(4, 2)
        ['sliding', 'full', 'sliding', 'full']
    """
    return ["sliding" if (i + 1) % period else "full" for i in range(num_layers)]


@dataclass(kw_only=True)
class Gemma2Config(GemmaConfig):
    """Holds the shape and options of a Gemma 2 decoder (Gemma Team, 2024).

    Gemma 2 is Gemma with sandwich norms (``sandwich_norms``: each sublayer output is normed
    again before the residual add), local sliding-window and global layers alternating
    (``layer_types``, starting with a sliding one), attention scores scaled by
    ``query_pre_attn_scalar ** -0.5``, and tanh soft-capping of the attention scores
    (``attn_logit_softcap``) and of the final logits (``final_logit_softcap``). The other
    fields are :class:`~lmhub.models.gemma.config.GemmaConfig`'s.
    """

    sandwich_norms: bool = True
    """Whether each attention and feed-forward output is normed again (always, in Gemma 2)."""

    query_pre_attn_scalar: float | None = 256
    """The attention scores are scaled by ``query_pre_attn_scalar ** -0.5``."""

    attn_logit_softcap: float | None = 50.0
    """Cap the attention scores at ``c * tanh(s / c)``; ``None`` for no cap. PyTorch's SDPA
    cannot cap, so with a cap ``attn_impl="sdpa"`` runs eagerly; ``"flex"`` caps in its kernel."""

    final_logit_softcap: float | None = 30.0
    """Cap the output logits at ``c * tanh(logits / c)``; ``None`` for no cap."""

    sliding_window: int | None = 4096
    """How many positions a sliding-window layer sees, the current one included."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.errors import ConfigError

        super().validate()
        cap = self.final_logit_softcap
        if cap is not None and not cap > 0:
            raise ConfigError(
                f"'final_logit_softcap' must be a positive number or null, not {cap!r}.",
                field="final_logit_softcap",
                value=cap,
            )


gemma2_archs: Final = ArchRegistry(GEMMA2_FAMILY, Gemma2Config)


@gemma2_archs.register("gemma2_tiny")
def gemma2_tiny() -> Gemma2Config:
    """A ~1.5M-parameter Gemma 2 for tests and demos (byte-level vocabulary; the first of two
    layers slides over 8 positions)."""
    return Gemma2Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        query_pre_attn_scalar=32,
        sliding_window=8,
        layer_types=alternating_layer_types(2, 2),
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gemma2_archs.register("gemma2_2b")
def gemma2_2b() -> Gemma2Config:
    """Gemma 2 2B."""
    return Gemma2Config(
        model_dim=2304,
        num_layers=26,
        num_heads=8,
        num_kv_heads=4,
        head_dim=256,
        ffn_inner_dim=9216,
        layer_types=alternating_layer_types(26, 2),
    )


@gemma2_archs.register("gemma2_9b")
def gemma2_9b() -> Gemma2Config:
    """Gemma 2 9B."""
    config = gemma2_2b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 3584, 42, 14336
    config.num_heads, config.num_kv_heads = 16, 8
    config.layer_types = alternating_layer_types(42, 2)
    return config


@gemma2_archs.register("gemma2_27b")
def gemma2_27b() -> Gemma2Config:
    """Gemma 2 27B (128-wide heads; scores scaled by model_dim / num_heads, not head_dim)."""
    config = gemma2_2b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 4608, 46, 36864
    config.num_heads, config.num_kv_heads, config.head_dim = 32, 16, 128
    config.query_pre_attn_scalar = 144
    config.layer_types = alternating_layer_types(46, 2)
    return config
