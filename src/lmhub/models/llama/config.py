"""Llama configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from lmhub.models.archs import ArchRegistry
from lmhub.models.validation import check_common, check_positive
from lmhub.nn.ffn import ACTIVATIONS
from lmhub.nn.moe import MoeConfig
from lmhub.nn.rope import RopeScaling, rotary_dims

LLAMA_FAMILY: Final = "llama"

LayerType = Literal["full", "sliding"]
"""How a layer attends: over every earlier position, or over a sliding window of them."""

QkNormScope = Literal["head", "projection"]
"""What a q/k norm normalises: each head over its width, or the whole projection."""


@dataclass(kw_only=True)
class LlamaConfig:
    """Holds the shape and options of a Llama decoder (Touvron et al., 2023; Llama 3, 2024).

    It is also the shared config of the RoPE decoders built like Llama (Mistral, Qwen2, Qwen3,
    Gemma 1/2/3, OLMo 2/3, SmolLM3): their configs subclass it, and the knobs Llama does not use
    (``attn_output_bias``, ``qk_norm``, ``sliding_window``, ``layer_types``, Gemma's
    ``norm_unit_offset`` ... ``rope_local_theta``, OLMo's ``qk_norm_scope`` and ``pre_norms``,
    SmolLM3's ``nope_layers``) default to Llama's behaviour.
    """

    model_dim: int = 4096
    """The width of the residual stream (HF ``hidden_size``)."""

    num_layers: int = 32
    """The number of decoder layers."""

    num_heads: int = 32
    """The number of query heads."""

    num_kv_heads: int = 32
    """The number of key/value heads; fewer than ``num_heads`` is GQA, 1 is MQA."""

    head_dim: int | None = None
    """The width of each head; ``None`` means ``model_dim // num_heads``."""

    ffn_inner_dim: int = 11008
    """The inner width of the SwiGLU feed-forward (HF ``intermediate_size``)."""

    vocab_size: int = 32000
    """The number of token embeddings and output logits."""

    max_seq_len: int = 4096
    """The longest sequence the model was trained for (HF ``max_position_embeddings``)."""

    rope_theta: float = 10_000.0
    """The RoPE base frequency."""

    rope_scaling: RopeScaling | None = None
    """How RoPE frequencies are scaled for longer contexts; ``None`` for no scaling."""

    norm_eps: float = 1e-5
    """The epsilon of the RMS norms."""

    tie_embeddings: bool = False
    """Whether the output projection shares the token embedding matrix."""

    dropout_p: float = 0.0
    """The dropout probability on attention weights during training."""

    attn_impl: str = "sdpa"
    """The attention kernel: ``sdpa`` (PyTorch fused), ``flex`` (flex attention) or ``eager``
    (reference); see :func:`lmhub.nn.attention.scaled_dot_product_attention`."""

    attn_bias: bool = False
    """Whether the q/k/v projections have biases (and the output one, unless
    ``attn_output_bias`` says otherwise; HF ``attention_bias``)."""

    attn_output_bias: bool | None = None
    """Whether the output projection has a bias; ``None`` means as ``attn_bias``. Qwen2 has
    q/k/v biases but none on the output."""

    qk_norm: bool = False
    """Whether each query and key head is RMS-normalised over its width before RoPE (Qwen3)."""

    has_sliding_windows: ClassVar[bool] = True
    """Whether the family's attention can slide; a family whose layers cannot (multi-head latent
    attention, linear mixers) sets it False, and ``validate`` then refuses a window."""

    sliding_window: int | None = None
    """How many positions a sliding-window layer sees, the current one included (HF's meaning);
    ``None`` for full attention everywhere."""

    layer_types: list[LayerType] | None = None
    """Per layer, ``full`` or ``sliding`` attention; ``None`` means every layer slides when
    ``sliding_window`` is set (Mistral)."""

    ffn_bias: bool = False
    """Whether the feed-forward projections have biases."""

    ffn_activation: str = "silu"
    """The activation of the gated feed-forward: ``silu`` (SwiGLU) or ``gelu_tanh`` (Gemma's
    GeGLU); see :data:`lmhub.nn.ffn.ACTIVATIONS`."""

    norm_unit_offset: bool = False
    """Whether every RMSNorm scales by ``1 + weight`` (Gemma), its weight an offset from one."""

    scale_embeddings: bool = False
    """Whether token embeddings are multiplied by ``sqrt(model_dim)`` (Gemma; the factor is
    rounded to the hidden dtype first, as in transformers)."""

    sandwich_norms: bool = False
    """Whether each attention and feed-forward output is RMS-normed again before the residual
    add (Gemma 2/3's post-attention and post-feed-forward norms)."""

    query_pre_attn_scalar: float | None = None
    """The attention scores are scaled by ``query_pre_attn_scalar ** -0.5`` (Gemma 2/3);
    ``None`` means ``head_dim ** -0.5``."""

    attn_logit_softcap: float | None = None
    """Cap the attention scores at ``c * tanh(s / c)`` (Gemma 2); ``None`` for no cap.
    PyTorch's SDPA cannot cap, so a capped model runs its attention eagerly whatever
    ``attn_impl`` says."""

    rope_local_theta: float | None = None
    """The RoPE base of the sliding-window layers, without scaling (Gemma 3's
    ``rope_local_base_freq``); ``None`` means every layer uses ``rope_theta``/``rope_scaling``."""

    init_std: float = 0.02
    """The standard deviation of the normal init of linear and embedding weights."""

    bos_token_id: int | None = 1
    """The beginning-of-sequence token id."""

    eos_token_id: int | list[int] | None = 2
    """The end-of-sequence token id, or several (Llama 3 instruct ends turns with two)."""

    pad_token_id: int | None = None
    """The padding token id, if the vocabulary has one."""

    # -- Phi-3 / Granite knobs (defaults are Llama's behaviour) --

    partial_rotary_factor: float = 1.0
    """The fraction of each head RoPE rotates, the leading ``int(head_dim * f)`` dimensions
    (Phi-4-mini's 0.75); the rest pass through unrotated."""

    embedding_multiplier: float = 1.0
    """A factor on the token embeddings (Granite)."""

    residual_multiplier: float = 1.0
    """A factor on each attention and feed-forward output before the residual add (Granite)."""

    attention_multiplier: float | None = None
    """The attention score scale itself (Granite); ``None`` leaves it to
    ``query_pre_attn_scalar`` / ``head_dim ** -0.5``."""

    # -- OLMo 2/3 and SmolLM3 knobs ---------------------------------------------------------------

    qk_norm_scope: QkNormScope = "head"
    """With ``qk_norm``: ``head`` normalises each query/key head over its width (Qwen3);
    ``projection`` normalises the whole query/key projection at once, with a weight of
    ``heads * head_dim`` (OLMo 2/3)."""

    pre_norms: bool = True
    """Whether each sublayer input is RMS-normed; OLMo 2/3 have only the post-sublayer norms of
    ``sandwich_norms``."""

    nope_layers: list[int] | None = None
    """The indices of the layers that apply no RoPE (SmolLM3's NoPE layers); ``None`` (or
    empty) means every layer rotates."""

    # -- mixture-of-experts and gpt-oss knobs ----------------------------------------------------

    moe: MoeConfig | None = None
    """The mixture-of-experts feed-forward of the sparse layers (Mixtral, Qwen3-MoE, gpt-oss);
    ``None`` for a dense model. Its ``first_dense_layers``/``dense_layers`` keep some layers
    dense, with ``ffn_inner_dim`` as their width."""

    attn_sinks: bool = False
    """Whether each attention head has a learned sink logit that joins the softmax and takes
    probability mass without contributing a value (gpt-oss). Attention then runs eagerly."""

    def resolved_head_dim(self) -> int:
        """Return ``head_dim``, or ``model_dim // num_heads`` when it is unset."""
        return self.head_dim if self.head_dim is not None else self.model_dim // self.num_heads

    def rotary_dim(self) -> int:
        """Return how many leading dimensions of each head RoPE rotates."""
        return rotary_dims(self.resolved_head_dim(), self.partial_rotary_factor)

    def layer_windows(self) -> list[int | None]:
        """Return each layer's sliding window, ``None`` for the full-attention layers.

        Example:
            >>> LlamaConfig(num_layers=3, sliding_window=8, layer_types=["full", "sliding",
            ...     "sliding"]).layer_windows()
            [None, 8, 8]
        """
        types = self.layer_types or ["sliding"] * self.num_layers
        return [self.sliding_window if t == "sliding" else None for t in types]

    def layer_rotates(self) -> list[bool]:
        """Return, per layer, whether it applies RoPE (``False`` for ``nope_layers``)."""
        nope = set(self.nope_layers or ())
        return [i not in nope for i in range(self.num_layers)]

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        from lmhub.errors import ConfigError

        check_common(self)
        check_positive(self, ["sliding_window"])
        if not self.has_sliding_windows and (
            self.sliding_window is not None or self.layer_types is not None
        ):
            field = "layer_types" if self.layer_types is not None else "sliding_window"
            raise ConfigError(
                f"'{field}' is set, but {type(self).__name__} describes a model without "
                "sliding-window layers. Leave 'sliding_window' and 'layer_types' null.",
                field=field,
                value=getattr(self, field),
            )
        for name in (
            "query_pre_attn_scalar",
            "attn_logit_softcap",
            "rope_local_theta",
            "attention_multiplier",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(
                    f"'{name}' must be a positive number or null, not {value!r}.",
                    field=name,
                    value=value,
                )
        if self.ffn_activation not in ACTIVATIONS:
            raise ConfigError(
                f"'ffn_activation' is '{self.ffn_activation}', which lmhub does not know. Use "
                f"one of: {', '.join(ACTIVATIONS)}.",
                field="ffn_activation",
                value=self.ffn_activation,
            )
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_layers:
                raise ConfigError(
                    f"'layer_types' lists {len(self.layer_types)} layers, but 'num_layers' is "
                    f"{self.num_layers}. Give one type per layer, or null.",
                    field="layer_types",
                    value=self.layer_types,
                )
            bad = [t for t in self.layer_types if t not in ("full", "sliding")]
            if bad:
                raise ConfigError(
                    f"'layer_types' holds '{bad[0]}', which is neither 'full' nor 'sliding'.",
                    field="layer_types",
                    value=bad[0],
                )
            if "sliding" in self.layer_types and self.sliding_window is None:
                raise ConfigError(
                    "'layer_types' has sliding layers, but 'sliding_window' is null. Set the "
                    "window size, or make every layer 'full'.",
                    field="sliding_window",
                )
        for name in ("embedding_multiplier", "residual_multiplier"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"'{name}' must be a positive number, not {getattr(self, name)!r}.",
                    field=name,
                    value=getattr(self, name),
                )
        if self.qk_norm_scope not in ("head", "projection"):
            raise ConfigError(
                f"'qk_norm_scope' is '{self.qk_norm_scope}'; use 'head' or 'projection'.",
                field="qk_norm_scope",
                value=self.qk_norm_scope,
            )
        bad_nope = [i for i in self.nope_layers or () if not 0 <= i < self.num_layers]
        if bad_nope or len(set(self.nope_layers or ())) != len(self.nope_layers or ()):
            raise ConfigError(
                f"'nope_layers' is {self.nope_layers}, but it must list distinct layer indices "
                f"from 0 to {self.num_layers - 1} ('num_layers' is {self.num_layers}).",
                field="nope_layers",
                value=self.nope_layers,
            )
        if self.resolved_head_dim() % 2:
            raise ConfigError(
                f"The head width {self.resolved_head_dim()} must be even for RoPE.",
                field="head_dim",
            )
        if not 0 < self.partial_rotary_factor <= 1 or self.rotary_dim() % 2:
            raise ConfigError(
                f"'partial_rotary_factor' is {self.partial_rotary_factor!r}; it must be in (0, 1] "
                "and rotate an even number of each head's dimensions. Use a fraction such as 0.5, "
                "0.75 or 1.",
                field="partial_rotary_factor",
                value=self.partial_rotary_factor,
            )
        if self.moe is not None:
            self.moe.validate()
        if self.rope_scaling is not None:
            try:
                self.rope_scaling.validate()
            except ConfigError as exc:
                field = f"rope_scaling.{exc.field}"
                raise ConfigError(f"'{field}': {exc}", field=field, value=exc.value) from None


llama_archs: Final = ArchRegistry(LLAMA_FAMILY, LlamaConfig)


@llama_archs.register("llama_tiny")
def llama_tiny() -> LlamaConfig:
    """A ~4M-parameter Llama for tests and demos (byte-level vocabulary of 259 tokens)."""
    return LlamaConfig(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@llama_archs.register("llama2_7b")
def llama2_7b() -> LlamaConfig:
    """Llama 2 7B."""
    return LlamaConfig()


@llama_archs.register("llama2_13b")
def llama2_13b() -> LlamaConfig:
    """Llama 2 13B."""
    config = llama2_7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 40, 13824
    config.num_heads = config.num_kv_heads = 40
    return config


@llama_archs.register("llama2_70b")
def llama2_70b() -> LlamaConfig:
    """Llama 2 70B (grouped-query attention with 8 key/value heads)."""
    config = llama2_7b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 8192, 80, 28672
    config.num_heads, config.num_kv_heads = 64, 8
    return config


@llama_archs.register("llama3_8b")
def llama3_8b() -> LlamaConfig:
    """Llama 3 8B."""
    return LlamaConfig(
        num_kv_heads=8,
        ffn_inner_dim=14336,
        vocab_size=128_256,
        max_seq_len=8192,
        rope_theta=500_000.0,
        bos_token_id=128_000,
        eos_token_id=128_001,
    )


@llama_archs.register("llama3_70b")
def llama3_70b() -> LlamaConfig:
    """Llama 3 70B."""
    config = llama3_8b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 8192, 80, 28672
    config.num_heads = 64
    return config


def _llama3_1_scaling(factor: float) -> RopeScaling:
    return RopeScaling(
        kind="llama3",
        factor=factor,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_seq_len=8192,
    )


@llama_archs.register("llama3_1_8b")
def llama3_1_8b() -> LlamaConfig:
    """Llama 3.1 8B: Llama 3 with a 128K context through llama3 RoPE scaling."""
    config = llama3_8b()
    config.max_seq_len = 131_072
    config.rope_scaling = _llama3_1_scaling(8.0)
    return config


@llama_archs.register("llama3_1_70b")
def llama3_1_70b() -> LlamaConfig:
    """Llama 3.1 70B."""
    config = llama3_70b()
    config.max_seq_len = 131_072
    config.rope_scaling = _llama3_1_scaling(8.0)
    return config


@llama_archs.register("llama3_2_1b")
def llama3_2_1b() -> LlamaConfig:
    """Llama 3.2 1B (tied embeddings)."""
    config = llama3_1_8b()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 2048, 16, 8192
    config.head_dim = 64
    config.tie_embeddings = True
    config.rope_scaling = _llama3_1_scaling(32.0)
    return config


@llama_archs.register("llama3_2_3b")
def llama3_2_3b() -> LlamaConfig:
    """Llama 3.2 3B (tied embeddings)."""
    config = llama3_2_1b()
    config.model_dim, config.num_layers, config.num_heads = 3072, 28, 24
    config.head_dim = 128
    return config
