"""Mixtral configuration and the published architecture presets."""

from dataclasses import dataclass, field
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.moe import MoeConfig

MIXTRAL_FAMILY: Final = "mixtral"


@dataclass(kw_only=True)
class MixtralConfig(LlamaConfig):
    """Holds the shape and options of a Mixtral decoder (Jiang et al., 2024).

    Mixtral is Mistral with every feed-forward replaced by a sparse mixture of eight SwiGLU
    experts, two per token (softmax router, top-2 renormalised). The fields are
    :class:`~lmhub.models.llama.config.LlamaConfig`'s; ``moe`` holds the experts, and
    ``ffn_inner_dim`` equals ``moe.expert_inner_dim`` (HF has one ``intermediate_size``).
    """

    moe: MoeConfig | None = field(default_factory=lambda: MoeConfig(aux_loss_coef=0.02))
    """The mixture of experts of every layer."""


mixtral_archs: Final = ArchRegistry(MIXTRAL_FAMILY, MixtralConfig)


@mixtral_archs.register("mixtral_tiny")
def mixtral_tiny() -> MixtralConfig:
    """A ~2M-parameter Mixtral for tests and demos (byte-level vocabulary, 4 experts, top 2)."""
    return MixtralConfig(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=256,
        vocab_size=259,
        max_seq_len=512,
        rope_theta=1_000_000.0,
        moe=MoeConfig(num_experts=4, top_k=2, expert_inner_dim=256, aux_loss_coef=0.02),
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@mixtral_archs.register("mixtral_8x7b")
def mixtral_8x7b() -> MixtralConfig:
    """Mixtral 8x7B v0.1 (46.7B parameters, 12.9B active per token)."""
    return MixtralConfig(
        model_dim=4096,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        ffn_inner_dim=14336,
        vocab_size=32000,
        max_seq_len=32768,
        rope_theta=1_000_000.0,
        moe=MoeConfig(num_experts=8, top_k=2, expert_inner_dim=14336, aux_loss_coef=0.02),
        bos_token_id=1,
        eos_token_id=2,
    )


@mixtral_archs.register("mixtral_8x22b")
def mixtral_8x22b() -> MixtralConfig:
    """Mixtral 8x22B v0.1 (141B parameters, 39B active per token)."""
    config = mixtral_8x7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 6144, 56, 16384
    config.num_heads = 48
    config.max_seq_len = 65536
    config.moe = MoeConfig(num_experts=8, top_k=2, expert_inner_dim=16384, aux_loss_coef=0.001)
    return config
