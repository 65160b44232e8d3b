"""Granite 3 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

GRANITE_FAMILY: Final = "granite"


@dataclass(kw_only=True)
class GraniteConfig(LlamaConfig):
    """Holds the shape and options of an IBM Granite 3 decoder (IBM, 2024).

    Granite is a Llama with four scalar multipliers (muP-style): on the token embeddings
    (``embedding_multiplier``), on each sublayer output before its residual add
    (``residual_multiplier``), as the attention score scale (``attention_multiplier``), and a
    divisor of the logits (``logits_scaling``). The other fields are
    :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    attention_multiplier: float | None = 1.0
    """The attention score scale itself (transformers' Granite default is 1.0, not
    ``head_dim ** -0.5``)."""

    logits_scaling: float = 1.0
    """The logits are divided by it."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.errors import ConfigError

        super().validate()
        if not self.logits_scaling > 0:
            raise ConfigError(
                f"'logits_scaling' must be a positive number, not {self.logits_scaling!r}.",
                field="logits_scaling",
                value=self.logits_scaling,
            )


granite_archs: Final = ArchRegistry(GRANITE_FAMILY, GraniteConfig)


@granite_archs.register("granite_tiny")
def granite_tiny() -> GraniteConfig:
    """A ~1.6M-parameter Granite for tests and demos (byte-level vocabulary, GQA)."""
    return GraniteConfig(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        tie_embeddings=True,
        embedding_multiplier=12.0,
        residual_multiplier=0.22,
        attention_multiplier=0.03125,
        logits_scaling=8.0,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@granite_archs.register("granite3_2b")
def granite3_2b() -> GraniteConfig:
    """Granite 3.0 2B (tied embeddings, GQA with 8 key/value heads)."""
    return GraniteConfig(
        model_dim=2048,
        num_layers=40,
        num_heads=32,
        num_kv_heads=8,
        ffn_inner_dim=8192,
        vocab_size=49155,
        max_seq_len=4096,
        norm_eps=1e-5,
        tie_embeddings=True,
        embedding_multiplier=12.0,
        residual_multiplier=0.22,
        attention_multiplier=0.015625,
        logits_scaling=8.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


@granite_archs.register("granite3_8b")
def granite3_8b() -> GraniteConfig:
    """Granite 3.0 8B (tied embeddings)."""
    config = granite3_2b()
    config.model_dim, config.ffn_inner_dim = 4096, 12800
    config.attention_multiplier = 0.0078125
    config.logits_scaling = 16.0
    return config
