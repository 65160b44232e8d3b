"""OLMo 2 configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig, QkNormScope

OLMO2_FAMILY: Final = "olmo2"


@dataclass(kw_only=True)
class Olmo2Config(LlamaConfig):
    """Holds the shape and options of an OLMo 2 decoder (OLMo Team, 2024).

    OLMo 2 is a Llama whose norms come after the sublayers instead of before
    (``x + norm(attn(x))``, then ``h + norm(ffn(h))``: ``sandwich_norms`` without
    ``pre_norms``), and whose query and key projections are each RMS-normalised as a whole
    before they are split into heads and rotated (``qk_norm`` with ``qk_norm_scope``
    ``projection``). The other fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    qk_norm: bool = True
    """Whether the query and key projections are RMS-normalised (always, in OLMo 2)."""

    sandwich_norms: bool = True
    """Whether each attention and feed-forward output is RMS-normed before the residual add."""

    qk_norm_scope: QkNormScope = "projection"
    """OLMo 2 normalises each projection as a whole, its norm ``heads * head_dim`` wide."""

    pre_norms: bool = False
    """OLMo 2 has no norms before its sublayers."""


olmo2_archs: Final = ArchRegistry(OLMO2_FAMILY, Olmo2Config)


@olmo2_archs.register("olmo2_tiny")
def olmo2_tiny() -> Olmo2Config:
    """A ~1.6M-parameter OLMo 2 for tests and demos (byte-level vocabulary)."""
    return Olmo2Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@olmo2_archs.register("olmo2_1b")
def olmo2_1b() -> Olmo2Config:
    """OLMo 2 1B (the April 2025 release, ``OLMo-2-0425-1B``)."""
    return Olmo2Config(
        model_dim=2048,
        num_layers=16,
        num_heads=16,
        num_kv_heads=16,
        ffn_inner_dim=8192,
        vocab_size=100_352,
        max_seq_len=4096,
        rope_theta=500_000.0,
        norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=100_257,
        pad_token_id=100_277,
    )


@olmo2_archs.register("olmo2_7b")
def olmo2_7b() -> Olmo2Config:
    """OLMo 2 7B (``OLMo-2-1124-7B``)."""
    config = olmo2_1b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 4096, 32, 11008
    config.num_heads = config.num_kv_heads = 32
    return config


@olmo2_archs.register("olmo2_13b")
def olmo2_13b() -> Olmo2Config:
    """OLMo 2 13B (``OLMo-2-1124-13B``)."""
    config = olmo2_1b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 40, 13824
    config.num_heads = config.num_kv_heads = 40
    return config
