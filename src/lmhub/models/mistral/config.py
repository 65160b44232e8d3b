"""Mistral configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig

MISTRAL_FAMILY: Final = "mistral"


@dataclass(kw_only=True)
class MistralConfig(LlamaConfig):
    """Holds the shape and options of a Mistral decoder (Jiang et al., 2023).

    Mistral is a Llama with grouped-query attention and, in v0.1, a sliding window of 4096
    positions on every layer (``sliding_window``; ``layer_types`` stays ``None``, since
    transformers' Mistral slides on all layers or none). The fields are
    :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """


mistral_archs: Final = ArchRegistry(MISTRAL_FAMILY, MistralConfig)


@mistral_archs.register("mistral_tiny")
def mistral_tiny() -> MistralConfig:
    """A ~4M-parameter Mistral for tests and demos (byte-level vocabulary, window of 8)."""
    return MistralConfig(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@mistral_archs.register("mistral_7b_v0_1")
def mistral_7b_v0_1() -> MistralConfig:
    """Mistral 7B v0.1: GQA with 8 key/value heads and a 4096-position sliding window."""
    return MistralConfig(
        model_dim=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        ffn_inner_dim=14336,
        vocab_size=32000,
        max_seq_len=32768,
        rope_theta=10_000.0,
        sliding_window=4096,
        bos_token_id=1,
        eos_token_id=2,
    )


@mistral_archs.register("mistral_7b_v0_3")
def mistral_7b_v0_3() -> MistralConfig:
    """Mistral 7B v0.3: v0.2's full attention and RoPE base 1e6, with a 32768-token vocabulary."""
    config = mistral_7b_v0_1()
    config.vocab_size = 32768
    config.rope_theta = 1_000_000.0
    config.sliding_window = None
    return config
