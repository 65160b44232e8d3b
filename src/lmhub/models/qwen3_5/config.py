"""Qwen3.5 (text) configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig
from lmhub.models.validation import check_positive
from lmhub.nn.moe import MoeConfig

QWEN3_5_FAMILY: Final = "qwen3_5"

MixerType = Literal["linear", "full"]
"""How a layer mixes tokens: Gated DeltaNet linear attention, or gated full attention."""

FULL_ATTENTION_INTERVAL: Final = 4
"""Without explicit mixer types every fourth layer attends fully (transformers' default)."""


@dataclass(kw_only=True)
class Qwen3_5Config(LlamaConfig):
    """Holds the shape and options of a Qwen3.5 text decoder (Qwen team, 2026), dense or MoE.

    A hybrid: three of every four layers mix tokens with Gated DeltaNet linear attention
    (:mod:`lmhub.nn.gated_deltanet`), the fourth with full attention whose output is gated per
    channel by ``sigmoid`` of a second half of the query projection, with per-head q/k norms
    and RoPE on the first quarter of each head (``partial_rotary_factor``). Norms scale by
    ``1 + weight``. The MoE sizes route each token to ``moe.top_k`` experts plus a sigmoid-
    gated shared expert. The other fields are
    :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    has_sliding_windows: ClassVar[bool] = False
    """Gated DeltaNet or full attention per layer (``mixer_types``): no sliding windows."""

    head_dim: int | None = 256
    """The width of each full-attention head."""

    qk_norm: bool = True
    """Per-head q/k RMSNorm in the full-attention layers (always, in Qwen3.5)."""

    norm_unit_offset: bool = True
    """Norms scale by ``1 + weight`` (always, in Qwen3.5)."""

    partial_rotary_factor: float = 0.25
    """The fraction of each full-attention head that RoPE rotates."""

    mixer_types: list[MixerType] | None = None
    """Per layer, ``"linear"`` (Gated DeltaNet) or ``"full"`` attention (HF ``layer_types``);
    ``None``: every fourth layer full, the others linear."""

    linear_num_key_heads: int = 16
    """The query/key heads of the linear-attention layers."""

    linear_num_value_heads: int = 32
    """The value heads (and state matrices) of the linear-attention layers; a multiple of
    ``linear_num_key_heads``."""

    linear_key_head_dim: int = 128
    """The width of each linear-attention query/key head."""

    linear_value_head_dim: int = 128
    """The width of each linear-attention value head."""

    linear_conv_kernel: int = 4
    """The length of the causal depthwise convolution over q/k/v (HF
    ``linear_conv_kernel_dim``)."""

    def resolved_mixer_types(self) -> list[MixerType]:
        """Return each layer's mixer, filling in the default pattern."""
        if self.mixer_types is not None:
            return list(self.mixer_types)
        return [
            "full" if (i + 1) % FULL_ATTENTION_INTERVAL == 0 else "linear"
            for i in range(self.num_layers)
        ]

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        super().validate()
        check_positive(
            self,
            [
                "linear_num_key_heads",
                "linear_num_value_heads",
                "linear_key_head_dim",
                "linear_value_head_dim",
                "linear_conv_kernel",
            ],
        )
        if self.linear_num_value_heads % self.linear_num_key_heads:
            raise ConfigError(
                f"'linear_num_value_heads' ({self.linear_num_value_heads}) must be a multiple of "
                f"'linear_num_key_heads' ({self.linear_num_key_heads}). Change one of them.",
                field="linear_num_value_heads",
                value=self.linear_num_value_heads,
            )
        if self.mixer_types is not None:
            if len(self.mixer_types) != self.num_layers:
                raise ConfigError(
                    f"'mixer_types' lists {len(self.mixer_types)} layers, but 'num_layers' is "
                    f"{self.num_layers}. Give one type per layer, or null.",
                    field="mixer_types",
                    value=self.mixer_types,
                )
            bad = [t for t in self.mixer_types if t not in ("linear", "full")]
            if bad:
                raise ConfigError(
                    f"'mixer_types' holds '{bad[0]}', which is neither 'linear' nor 'full'.",
                    field="mixer_types",
                    value=bad[0],
                )


qwen3_5_archs: Final = ArchRegistry(QWEN3_5_FAMILY, Qwen3_5Config)


@qwen3_5_archs.register("qwen3_5_tiny")
def qwen3_5_tiny() -> Qwen3_5Config:
    """A ~3M-parameter Qwen3.5 for tests and demos (byte-level vocabulary; three linear layers
    then a full one)."""
    return Qwen3_5Config(
        model_dim=256,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        head_dim=64,
        ffn_inner_dim=688,
        linear_num_key_heads=2,
        linear_num_value_heads=4,
        linear_key_head_dim=32,
        linear_value_head_dim=32,
        vocab_size=259,
        max_seq_len=512,
        norm_eps=1e-6,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@qwen3_5_archs.register("qwen3_5_9b")
def qwen3_5_9b() -> Qwen3_5Config:
    """Qwen3.5-9B's text model."""
    return Qwen3_5Config(
        model_dim=4096,
        num_layers=32,
        num_heads=16,
        num_kv_heads=4,
        ffn_inner_dim=12288,
        vocab_size=248_320,
        max_seq_len=262_144,
        rope_theta=10_000_000.0,
        norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=248_044,
    )


@qwen3_5_archs.register("qwen3_5_0_8b")
def qwen3_5_0_8b() -> Qwen3_5Config:
    """Qwen3.5-0.8B's text model (tied embeddings; 16 value heads in the linear layers).

    Source: the ``text_config`` of Qwen/Qwen3.5-0.8B's ``config.json`` (hidden 1024, 24
    layers, intermediate 3584, 8 heads / 2 key-value heads of 256, linear attention 16 key and
    16 value heads of 128, tied embeddings), as quoted in public Qwen3.5 config parsers'
    fixtures; THUDM/slime's ``scripts/models/qwen3.5-0.8B.sh`` agrees on the shape.
    """
    config = qwen3_5_9b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 1024, 24, 3584
    config.num_heads, config.num_kv_heads = 8, 2
    config.linear_num_value_heads = 16
    config.tie_embeddings = True
    return config


@qwen3_5_archs.register("qwen3_5_4b")
def qwen3_5_4b() -> Qwen3_5Config:
    """Qwen3.5-4B's text model (tied embeddings).

    Source: the ``text_config`` of Qwen/Qwen3.5-4B's ``config.json`` (hidden 2560, 32 layers,
    intermediate 9216, 16 heads / 4 key-value heads of 256, linear attention 16 key and 32
    value heads of 128, tied embeddings), as quoted in public Qwen3.5 loaders' fixtures.
    """
    config = qwen3_5_9b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2560, 32, 9216
    config.tie_embeddings = True
    return config


@qwen3_5_archs.register("qwen3_5_27b")
def qwen3_5_27b() -> Qwen3_5Config:
    """Qwen3.5-27B's text model."""
    config = qwen3_5_9b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 64, 17408
    config.num_heads = 24
    config.linear_num_value_heads = 48
    return config


@qwen3_5_archs.register("qwen3_5_35b_a3b")
def qwen3_5_35b_a3b() -> Qwen3_5Config:
    """Qwen3.5-35B-A3B's text model: 256 experts, 8 per token, plus a gated shared expert."""
    config = qwen3_5_9b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2048, 40, 512
    config.num_heads, config.num_kv_heads = 16, 2
    config.moe = MoeConfig(
        num_experts=256,
        top_k=8,
        expert_inner_dim=512,
        scoring="softmax",
        norm_topk=True,
        shared_inner_dim=512,
        shared_gate=True,
        aux_loss_coef=0.001,
    )
    return config


@qwen3_5_archs.register("qwen3_5_122b_a10b")
def qwen3_5_122b_a10b() -> Qwen3_5Config:
    """Qwen3.5-122B-A10B's text model."""
    config = qwen3_5_35b_a3b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 3072, 48, 1024
    config.num_heads = 32
    config.linear_num_value_heads = 64
    assert config.moe is not None
    config.moe.expert_inner_dim = config.moe.shared_inner_dim = 1024
    return config


@qwen3_5_archs.register("qwen3_5_397b_a17b")
def qwen3_5_397b_a17b() -> Qwen3_5Config:
    """Qwen3.5-397B-A17B's text model: 512 experts, 10 per token."""
    config = qwen3_5_122b_a10b()
    config.model_dim, config.num_layers = 4096, 60
    assert config.moe is not None
    config.moe.num_experts, config.moe.top_k = 512, 10
    return config
