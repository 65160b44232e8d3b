"""The LoRA settings, and which linear layers each family adapts by default."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from lmhub.errors import ConfigError

ATTENTION_PROJECTIONS: Final = ("q_proj", "k_proj", "v_proj", "o_proj")
GLU_PROJECTIONS: Final = ("gate_proj", "up_proj", "down_proj")
MLP_PROJECTIONS: Final = ("fc1", "fc2")

DEFAULT_TARGETS: Final[Mapping[str, tuple[str, ...]]] = {
    "llama": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "mistral": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "qwen2": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "qwen3": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "gemma": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "gemma2": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "gemma3": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    # The KV-sharing layers have no k/v projections (the others' are adapted); in the MoE
    # model the GLU names reach the dense feed-forward beside the (stacked) experts.
    "gemma4": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "deepone": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "causal_lm": ATTENTION_PROJECTIONS + MLP_PROJECTIONS,
    "gpt2": ATTENTION_PROJECTIONS + MLP_PROJECTIONS,
    "gpt_neox": ATTENTION_PROJECTIONS + MLP_PROJECTIONS,
    "phi3": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "granite": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "olmo2": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "olmo3": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "smollm3": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
    "single_head": ("qk_proj", "v_proj", *MLP_PROJECTIONS),
    # Latent attention's projections (V2-Lite's one-step q_proj is left out, like V3's absent
    # ones are skipped there); routed experts are stacked tensors, so the GLU names reach the
    # dense layers and the shared experts.
    "deepseek_v3": ("q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj", "o_proj", *GLU_PROJECTIONS),
    # Full-attention and Gated DeltaNet projections (not the per-head beta/decay ones).
    "qwen3_5": (*ATTENTION_PROJECTIONS, "in_proj_qkv", "in_proj_z", "out_proj", *GLU_PROJECTIONS),
    # Mixtures of experts: the experts are stacked tensors, not nn.Linear; adapt attention.
    "mixtral": ATTENTION_PROJECTIONS,
    "qwen3_moe": ATTENTION_PROJECTIONS,
    "gpt_oss": ATTENTION_PROJECTIONS,
    "bert": ATTENTION_PROJECTIONS + MLP_PROJECTIONS,
    "modernbert": ATTENTION_PROJECTIONS + GLU_PROJECTIONS,
}
"""Per family: the attention and MLP projections LoRA adapts when ``targets`` is left empty."""

FALLBACK_TARGETS: Final = (*ATTENTION_PROJECTIONS, "qk_proj", *GLU_PROJECTIONS, *MLP_PROJECTIONS)
"""For a family not in :data:`DEFAULT_TARGETS`: those of these names the model has."""


@dataclass(kw_only=True)
class LoraConfig:
    """How :func:`lmhub.peft.apply_lora` adapts a model: ``W x + scaling * B A x``.

    Example:
        >>> LoraConfig(rank=8, alpha=16).scaling
        2.0
    """

    rank: int = 8
    """The inner dimension ``r`` of the low-rank update (PEFT's ``r``)."""

    alpha: float = 16.0
    """The update is scaled by ``alpha / rank`` (``alpha / sqrt(rank)`` with rsLoRA)."""

    dropout: float = 0.0
    """Dropout applied to the adapter's input while training (PEFT's ``lora_dropout``)."""

    targets: list[str] = field(default_factory=list)
    """Module-name patterns of the ``nn.Linear`` layers to adapt. A pattern matches a module
    whose dotted name equals it or ends with ``.`` + pattern (``q_proj``, ``attn.q_proj``,
    ``layers.0.attn.q_proj``); ``*``/``?`` are globs over the whole name (``layers.1*.ffn.*``).
    Empty: the family's :data:`DEFAULT_TARGETS` (attention and MLP projections)."""

    use_rslora: bool = False
    """Rank-stabilised LoRA: scale by ``alpha / sqrt(rank)``, which keeps high ranks learning."""

    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA): also trains a magnitude per output row of each adapted
    weight, ``W' = m * (W + scaling B A) / ||W + scaling B A||``. Slower per step than LoRA."""

    bias: str = "none"
    """Which biases train. Only ``"none"`` (PEFT's default) is supported."""

    @property
    def scaling(self) -> float:
        """The factor the low-rank update is multiplied by."""
        return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)

    def validate(self) -> None:
        """Raise :class:`ConfigError`, naming the field, if a value cannot be used."""
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(
                f"The LoRA rank is {self.rank!r}, but it must be a whole number of at least 1, "
                "such as 8.",
                field="rank",
                value=self.rank,
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ConfigError(
                f"The LoRA alpha is {self.alpha!r}, but it must be a number, such as 16.",
                field="alpha",
                value=self.alpha,
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(
                f"The LoRA dropout is {self.dropout!r}, but it must be at least 0 and below 1.",
                field="dropout",
                value=self.dropout,
            )
        if isinstance(self.targets, str) or not all(isinstance(t, str) for t in self.targets):
            raise ConfigError(
                f"The LoRA targets are {self.targets!r}, but they must be a list of module-name "
                "patterns, such as ['q_proj', 'v_proj'].",
                field="targets",
                value=self.targets,
            )
        for name in ("use_rslora", "use_dora"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"The LoRA setting {name} is {getattr(self, name)!r}, but it must be true or "
                    "false.",
                    field=name,
                    value=getattr(self, name),
                )
        if self.bias != "none":
            raise ConfigError(
                f"The LoRA bias setting is {self.bias!r}, but lmhub supports only 'none' "
                "(biases stay frozen). Set bias='none'.",
                field="bias",
                value=self.bias,
            )
