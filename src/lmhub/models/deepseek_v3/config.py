"""DeepSeek-V3 configuration and the published architecture presets."""

import math
from dataclasses import dataclass
from typing import ClassVar, Final

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig
from lmhub.models.validation import check_positive
from lmhub.nn.moe import MoeConfig
from lmhub.nn.rope import RopeScaling

DEEPSEEK_V3_FAMILY: Final = "deepseek_v3"


@dataclass(kw_only=True)
class DeepseekV3Config(LlamaConfig):
    """Holds the shape and options of a DeepSeek-V3 decoder (DeepSeek-AI, 2024).

    A pre-norm decoder whose attention is multi-head latent attention (:mod:`lmhub.nn.mla`) and
    whose feed-forwards are, after the first dense ones, a mixture of experts routed by sigmoid
    scores with group-limited top-k (``moe``; its ``first_dense_layers`` is HF
    ``first_k_dense_replace``). The
    :class:`~lmhub.models.llama.config.LlamaConfig` fields keep their meaning; ``head_dim`` is
    the query/key head width ``qk_nope_head_dim + qk_rope_head_dim`` and ``num_kv_heads``
    equals ``num_heads`` (every head decompresses its own key and value).
    """

    has_sliding_windows: ClassVar[bool] = False
    """Multi-head latent attention attends to every position: no sliding windows."""

    q_lora_rank: int | None = 1536
    """The width of the query bottleneck (HF ``q_lora_rank``); ``None`` projects queries in one
    step (DeepSeek-V2-Lite)."""

    kv_lora_rank: int = 512
    """The width of the per-token key/value latent that the cache stores."""

    qk_nope_head_dim: int = 128
    """The non-rotary dimensions of each query/key head."""

    qk_rope_head_dim: int = 64
    """The rotary dimensions of each query/key head (the rotary key is shared by the heads)."""

    v_head_dim: int = 128
    """The width of each value head."""

    rope_interleave: bool = True
    """Whether the rotary dimensions pair up interleaved (DeepSeek's checkpoints) rather than
    as halves."""

    def qk_head_dim(self) -> int:
        """Return the width of a query/key head (non-rotary + rotary)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def softmax_scale(self) -> float:
        """Return the attention score scale: ``qk_head_dim ** -0.5``, times ``mscale ** 2``
        under YaRN with ``mscale_all_dim`` (DeepSeek's long-context scaling)."""
        scale = self.qk_head_dim() ** -0.5
        s = self.rope_scaling
        if s is not None and s.kind != "default" and s.mscale_all_dim:
            m = 1.0 if s.factor <= 1 else 0.1 * s.mscale_all_dim * math.log(s.factor) + 1.0
            scale = scale * m * m
        return scale

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        super().validate()
        check_positive(
            self,
            ["q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"],
        )
        if self.qk_rope_head_dim % 2:
            raise ConfigError(
                f"'qk_rope_head_dim' is {self.qk_rope_head_dim}, but RoPE rotates pairs of "
                "dimensions: make it even.",
                field="qk_rope_head_dim",
                value=self.qk_rope_head_dim,
            )
        if self.resolved_head_dim() != self.qk_head_dim():
            raise ConfigError(
                f"'head_dim' is {self.resolved_head_dim()}, but multi-head latent attention "
                f"heads are qk_nope_head_dim + qk_rope_head_dim = {self.qk_head_dim()} wide. "
                "Set head_dim to that sum.",
                field="head_dim",
                value=self.head_dim,
            )
        if self.num_kv_heads != self.num_heads:
            raise ConfigError(
                f"'num_kv_heads' is {self.num_kv_heads}, but multi-head latent attention "
                f"decompresses a key and value for each of the {self.num_heads} heads. Set "
                "num_kv_heads to num_heads.",
                field="num_kv_heads",
                value=self.num_kv_heads,
            )


deepseek_v3_archs: Final = ArchRegistry(DEEPSEEK_V3_FAMILY, DeepseekV3Config)


@deepseek_v3_archs.register("deepseek_v3_tiny")
def deepseek_v3_tiny() -> DeepseekV3Config:
    """A ~2.7M-parameter DeepSeek-V3 for tests and demos (byte-level vocabulary; one dense
    layer, then two sparse layers of 8 experts in 4 groups)."""
    return DeepseekV3Config(
        model_dim=256,
        num_layers=3,
        num_heads=4,
        num_kv_heads=4,
        head_dim=48,
        q_lora_rank=64,
        kv_lora_rank=32,
        qk_nope_head_dim=32,
        qk_rope_head_dim=16,
        v_head_dim=32,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        norm_eps=1e-6,
        moe=MoeConfig(
            num_experts=8,
            top_k=2,
            expert_inner_dim=128,
            scoring="sigmoid",
            norm_topk=True,
            routed_scaling_factor=2.5,
            num_groups=4,
            topk_groups=2,
            correction_bias=True,
            num_shared_experts=1,
            first_dense_layers=1,
        ),
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@deepseek_v3_archs.register("deepseek_v3")
def deepseek_v3() -> DeepseekV3Config:
    """DeepSeek-V3 and V3.1/R1 (671B total, 37B active per token; the multi-token-prediction
    layer of the released checkpoint is not part of the model)."""
    return DeepseekV3Config(
        model_dim=7168,
        num_layers=61,
        num_heads=128,
        num_kv_heads=128,
        head_dim=192,
        ffn_inner_dim=18432,
        vocab_size=129_280,
        max_seq_len=163_840,
        rope_theta=10_000.0,
        rope_scaling=RopeScaling(
            kind="yarn",
            factor=40.0,
            original_max_seq_len=4096,
            beta_fast=32.0,
            beta_slow=1.0,
            mscale=1.0,
            mscale_all_dim=1.0,
        ),
        norm_eps=1e-6,
        moe=MoeConfig(
            num_experts=256,
            top_k=8,
            expert_inner_dim=2048,
            scoring="sigmoid",
            norm_topk=True,
            routed_scaling_factor=2.5,
            num_groups=8,
            topk_groups=4,
            correction_bias=True,
            num_shared_experts=1,
            first_dense_layers=3,
        ),
        bos_token_id=0,
        eos_token_id=1,
    )


@deepseek_v3_archs.register("deepseek_v2_lite")
def deepseek_v2_lite() -> DeepseekV3Config:
    """DeepSeek-V2-Lite's shape (15.7B total, 2.4B active): one-step query projection, softmax
    routing over 64 experts without groups, two shared experts. (Its checkpoints are HF
    ``deepseek_v2``, which lmhub does not read yet; the preset serves sizing and training.)"""
    config = deepseek_v3()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2048, 27, 10944
    config.num_heads = config.num_kv_heads = 16
    config.q_lora_rank = None
    config.vocab_size = 102_400
    config.rope_scaling = RopeScaling(
        kind="yarn",
        factor=40.0,
        original_max_seq_len=4096,
        mscale=0.707,
        mscale_all_dim=0.707,
    )
    config.bos_token_id, config.eos_token_id = 100_000, 100_001
    config.moe = MoeConfig(
        num_experts=64,
        top_k=6,
        expert_inner_dim=1408,
        scoring="softmax",
        norm_topk=False,
        num_shared_experts=2,
        first_dense_layers=1,
    )
    return config
