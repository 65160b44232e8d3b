"""Gemma 4 (text) configuration and the published architecture presets.

Sources of the presets: the ``text_config`` of each published ``config.json``
(google/gemma-4-E2B, -E4B, -26B-A4B, -31B; as quoted in the config-parsing tests of ollama's
``x/models/gemma4`` and cross-checked against gemma.cpp's Gemma 4 configs and NVIDIA
Megatron-Bridge's E4B recipe), read by transformers' ``Gemma4TextConfig``. Published sizes: the
Gemma 4 model card (E2B "2.3B effective, 5.1B with embeddings", E4B "4.5B effective, 8B with
embeddings", 26B A4B "25.2B total, 3.8B active", 31B "30.7B"); those totals include the vision
encoder (about 150M parameters for E2B/E4B, 550M for 26B/31B) and, for E2B/E4B, the audio
encoder (about 300M), which lmhub's text model leaves out (see ``tests/models/test_gemma4.py``).
"""

from dataclasses import dataclass, field
from typing import Final

from lmhub.errors import ConfigError
from lmhub.models.archs import ArchRegistry
from lmhub.models.gemma2.config import alternating_layer_types
from lmhub.models.llama.config import LayerType, LlamaConfig
from lmhub.models.validation import check_positive
from lmhub.nn.moe import MoeConfig
from lmhub.nn.rope import RopeScaling

GEMMA4_FAMILY: Final = "gemma4"

GEMMA4_PERIOD: Final = 6
"""Every sixth Gemma 4 layer is global (transformers' default pattern; E2B uses 5)."""


def default_layer_types(num_layers: int) -> list[LayerType]:
    """transformers' Gemma 4 pattern: every sixth layer global, and the last one.

    Example:
        >>> default_layer_types(8)
        ['sliding', 'sliding', 'sliding', 'sliding', 'sliding', 'full', 'sliding', 'full']
    """
    types = alternating_layer_types(num_layers, GEMMA4_PERIOD)
    return [*types[:-1], "full"] if types else types


def proportional_rope(fraction: float = 0.25) -> RopeScaling:
    """The RoPE of Gemma 4's global layers: ``proportional`` over the whole head, with the
    first ``fraction`` of the frequency pairs rotating."""
    return RopeScaling(kind="proportional", partial_rotary_factor=fraction)


@dataclass(kw_only=True)
class Gemma4Config(LlamaConfig):
    """Holds the shape and options of a Gemma 4 text decoder (Google DeepMind, 2026).

    Gemma 4 keeps Gemma 3's layout (sandwich norms, per-head q/k norms, scaled embeddings,
    sliding and global layers with a RoPE each) with plain ``weight``-scaled norms, an RMS norm
    on the values too, attention scores left unscaled (``attention_multiplier`` 1), soft-capped
    logits, and:

    - global layers with heads of their own width (``global_head_dim``) and proportional RoPE
      (``rope_scaling``), optionally fewer key/value heads whose values are the keys'
      projection (``attn_k_eq_v``, ``num_global_kv_heads``);
    - per-layer embeddings (``per_layer_dim``; :mod:`lmhub.nn.per_layer_embeddings`);
    - KV sharing: the last ``num_kv_shared_layers`` layers project only queries and attend
      over the keys and values of the last earlier layer of their kind, optionally with
      feed-forwards twice as wide (``double_wide_shared_ffn``);
    - a stored scalar on each layer's output (``layer_scalar``);
    - for the MoE size, a mixture of experts beside the dense feed-forward of every layer
      (``moe``; :class:`~lmhub.nn.moe.DenseAndMoEFeedForward`).

    The other fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    model_dim: int = 2304
    """The width of the residual stream (HF ``hidden_size``)."""

    num_layers: int = 30
    """The number of decoder layers."""

    num_heads: int = 8
    """The number of query heads (in every layer)."""

    num_kv_heads: int = 4
    """The number of key/value heads of the sliding layers (and of the global ones unless
    ``num_global_kv_heads`` says otherwise)."""

    head_dim: int | None = 256
    """The head width of the sliding layers."""

    ffn_inner_dim: int = 9216
    """The inner width of the dense GeGLU feed-forward (HF ``intermediate_size``)."""

    vocab_size: int = 262_144
    """The number of token embeddings and output logits."""

    max_seq_len: int = 131_072
    """The longest sequence the model was trained for (HF ``max_position_embeddings``)."""

    rope_theta: float = 1_000_000.0
    """The RoPE base of the global (full-attention) layers."""

    rope_scaling: RopeScaling | None = field(default_factory=proportional_rope)
    """The RoPE of the global layers: proportional, rotating a quarter of the frequency pairs."""

    rope_local_theta: float | None = 10_000.0
    """The RoPE base of the sliding layers (plain RoPE over the whole head)."""

    norm_eps: float = 1e-6
    """The epsilon of the RMS norms."""

    tie_embeddings: bool = True
    """Whether the output projection shares the token embedding matrix."""

    qk_norm: bool = True
    """Per-head q/k RMSNorms before RoPE (always, in Gemma 4)."""

    sliding_window: int | None = 512
    """How many positions a sliding layer sees, the current one included."""

    ffn_activation: str = "gelu_tanh"
    """The activation of the gated feed-forwards (GeGLU, HF ``gelu_pytorch_tanh``)."""

    scale_embeddings: bool = True
    """Token embeddings are multiplied by ``sqrt(model_dim)`` (always, in Gemma 4)."""

    sandwich_norms: bool = True
    """Each attention and feed-forward output is normed before the residual add (always)."""

    attention_multiplier: float | None = 1.0
    """The attention score scale: 1, the q/k norms set the scores' size (always, in Gemma 4)."""

    bos_token_id: int | None = 2
    """The beginning-of-sequence token id."""

    eos_token_id: int | list[int] | None = 1
    """The end-of-sequence token id(s)."""

    pad_token_id: int | None = 0
    """The padding token id."""

    final_logit_softcap: float | None = None
    """Cap the output logits at ``c * tanh(logits / c)`` (30 in the published models); ``None``
    for no cap."""

    global_head_dim: int | None = 512
    """The head width of the global layers; ``None`` means ``head_dim``."""

    attn_k_eq_v: bool = False
    """Whether the global layers have no value projection, their values being the key
    projection's output (before the key norm and RoPE; HF ``attention_k_eq_v``)."""

    num_global_kv_heads: int | None = None
    """The key/value heads of the global layers (HF ``num_global_key_value_heads``, which
    transformers reads only with ``attn_k_eq_v``); ``None`` means ``num_kv_heads``."""

    per_layer_dim: int = 0
    """The width of each layer's per-layer embedding (HF ``hidden_size_per_layer_input``);
    0 for none."""

    per_layer_vocab_size: int = 262_144
    """The vocabulary of the per-layer embeddings (HF ``vocab_size_per_layer_input``)."""

    num_kv_shared_layers: int = 0
    """How many last layers reuse the keys and values of the last earlier layer of their kind
    instead of projecting their own (and keep nothing in the cache)."""

    double_wide_shared_ffn: bool = False
    """Whether the KV-sharing layers' dense feed-forwards are twice ``ffn_inner_dim`` wide (HF
    ``use_double_wide_mlp``)."""

    def resolved_layer_types(self) -> list[LayerType]:
        """Return each layer's kind (transformers' default pattern when ``layer_types`` is
        unset: every sixth layer global, and the last one)."""
        if self.layer_types is not None:
            return list(self.layer_types)
        return default_layer_types(self.num_layers)

    def layer_windows(self) -> list[int | None]:
        return [
            self.sliding_window if t == "sliding" else None for t in self.resolved_layer_types()
        ]

    def layer_head_dim(self, layer_idx: int) -> int:
        """The head width of layer ``layer_idx``."""
        if self.resolved_layer_types()[layer_idx] == "full" and self.global_head_dim is not None:
            return self.global_head_dim
        return self.resolved_head_dim()

    def layer_kv_heads(self, layer_idx: int) -> int:
        """The key/value heads of layer ``layer_idx``."""
        if self.resolved_layer_types()[layer_idx] == "full" and self.num_global_kv_heads:
            return self.num_global_kv_heads
        return self.num_kv_heads

    def kv_sources(self) -> list[int | None]:
        """Per layer, the earlier layer whose keys and values it reuses (``None``: its own).

        Example:
            >>> Gemma4Config(num_layers=4, layer_types=["sliding", "full", "sliding", "full"],
            ...     num_kv_shared_layers=2).kv_sources()
            [None, None, 0, 1]
        """
        types = self.resolved_layer_types()
        first = self.num_layers - self.num_kv_shared_layers
        last: dict[str, int] = {}
        for i in range(first):
            last[types[i]] = i
        return [None if i < first else last.get(types[i]) for i in range(self.num_layers)]

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid model."""
        super().validate()
        check_positive(self, ["global_head_dim", "num_global_kv_heads"])
        types = self.resolved_layer_types()
        if "sliding" in types and self.sliding_window is None:
            raise ConfigError(
                "The model has sliding layers, but 'sliding_window' is null. Set the window "
                "size, or make every layer 'full'.",
                field="sliding_window",
            )
        if types[-1] != "full":
            raise ConfigError(
                "Gemma 4's last layer attends fully, but 'layer_types' makes it 'sliding'. "
                "End 'layer_types' with 'full'.",
                field="layer_types",
                value=self.layer_types,
            )
        for name in ("per_layer_dim", "num_kv_shared_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"'{name}' must be zero or a positive integer, not {value!r}.",
                    field=name,
                    value=value,
                )
        if self.per_layer_dim and not self.per_layer_vocab_size > 0:
            raise ConfigError(
                f"'per_layer_vocab_size' must be positive, not {self.per_layer_vocab_size!r}.",
                field="per_layer_vocab_size",
                value=self.per_layer_vocab_size,
            )
        if self.num_kv_shared_layers >= self.num_layers:
            raise ConfigError(
                f"'num_kv_shared_layers' is {self.num_kv_shared_layers}, but at least one of "
                f"the {self.num_layers} layers must compute its own keys and values.",
                field="num_kv_shared_layers",
                value=self.num_kv_shared_layers,
            )
        sources = self.kv_sources()
        orphan = [
            i
            for i, src in enumerate(sources)
            if src is None and i >= len(sources) - self.num_kv_shared_layers
        ]
        if orphan:
            raise ConfigError(
                f"Layer {orphan[0]} shares keys and values, but no earlier layer of its kind "
                f"('{types[orphan[0]]}') computes its own. Give every kind of layer a "
                "non-sharing layer before the last 'num_kv_shared_layers'.",
                field="num_kv_shared_layers",
                value=self.num_kv_shared_layers,
            )
        for i in range(self.num_layers):
            if self.num_heads % self.layer_kv_heads(i):
                raise ConfigError(
                    f"'num_heads' ({self.num_heads}) must be a multiple of layer {i}'s "
                    f"key/value heads ({self.layer_kv_heads(i)}).",
                    field="num_global_kv_heads",
                    value=self.num_global_kv_heads,
                )
            if self.layer_head_dim(i) % 2:
                raise ConfigError(
                    f"Layer {i}'s head width {self.layer_head_dim(i)} must be even for RoPE.",
                    field="global_head_dim",
                    value=self.global_head_dim,
                )
        cap = self.final_logit_softcap
        if cap is not None and not cap > 0:
            raise ConfigError(
                f"'final_logit_softcap' must be a positive number or null, not {cap!r}.",
                field="final_logit_softcap",
                value=cap,
            )


gemma4_archs: Final = ArchRegistry(GEMMA4_FAMILY, Gemma4Config)


@gemma4_archs.register("gemma4_tiny")
def gemma4_tiny() -> Gemma4Config:
    """A ~3M-parameter Gemma 4 for tests and demos (byte-level vocabulary): three sliding
    layers and a global one of wider heads, per-layer embeddings. (No KV sharing, so that any
    ``num_layers`` override stays valid; the tests set ``num_kv_shared_layers`` themselves.)"""
    return Gemma4Config(
        model_dim=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=4,
        head_dim=32,
        global_head_dim=64,
        ffn_inner_dim=512,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        final_logit_softcap=30.0,
        per_layer_dim=32,
        per_layer_vocab_size=259,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@gemma4_archs.register("gemma4_e2b")
def gemma4_e2b() -> Gemma4Config:
    """Gemma 4 E2B, text model (google/gemma-4-E2B ``text_config``): 35 layers, 4 sliding : 1
    global, per-layer embeddings of 256, the last 20 layers sharing keys and values with
    double-wide feed-forwards."""
    return Gemma4Config(
        model_dim=1536,
        num_layers=35,
        num_heads=8,
        num_kv_heads=1,
        ffn_inner_dim=6144,
        sliding_window=512,
        layer_types=alternating_layer_types(35, 5),
        final_logit_softcap=30.0,
        per_layer_dim=256,
        num_kv_shared_layers=20,
        double_wide_shared_ffn=True,
    )


@gemma4_archs.register("gemma4_e4b")
def gemma4_e4b() -> Gemma4Config:
    """Gemma 4 E4B, text model (google/gemma-4-E4B ``text_config``): 42 layers, 5 sliding : 1
    global, per-layer embeddings of 256, the last 18 layers sharing keys and values."""
    return Gemma4Config(
        model_dim=2560,
        num_layers=42,
        num_heads=8,
        num_kv_heads=2,
        ffn_inner_dim=10240,
        sliding_window=512,
        final_logit_softcap=30.0,
        per_layer_dim=256,
        num_kv_shared_layers=18,
    )


@gemma4_archs.register("gemma4_31b")
def gemma4_31b() -> Gemma4Config:
    """Gemma 4 31B, text model (google/gemma-4-31B ``text_config``): 60 layers, 5 sliding : 1
    global, global layers with 4 key/value heads whose values are their keys."""
    return Gemma4Config(
        model_dim=5376,
        num_layers=60,
        num_heads=32,
        num_kv_heads=16,
        num_global_kv_heads=4,
        attn_k_eq_v=True,
        ffn_inner_dim=21504,
        max_seq_len=262_144,
        sliding_window=1024,
        final_logit_softcap=30.0,
    )


@gemma4_archs.register("gemma4_26b_a4b")
def gemma4_26b_a4b() -> Gemma4Config:
    """Gemma 4 26B A4B, text model (google/gemma-4-26B-A4B ``text_config``): 30 layers, each
    with a dense GeGLU of 2112 beside 128 experts of 704 (8 per token), 5 sliding : 1 global,
    global layers with 2 key/value heads whose values are their keys."""
    return Gemma4Config(
        model_dim=2816,
        num_layers=30,
        num_heads=16,
        num_kv_heads=8,
        num_global_kv_heads=2,
        attn_k_eq_v=True,
        ffn_inner_dim=2112,
        max_seq_len=262_144,
        sliding_window=1024,
        final_logit_softcap=30.0,
        moe=gemma4_moe(num_experts=128, top_k=8, expert_inner_dim=704),
    )


def gemma4_moe(*, num_experts: int, top_k: int, expert_inner_dim: int) -> MoeConfig:
    """Gemma 4's mixture of experts: softmax top-k renormalised, a normed and scaled router
    input, per-expert scales on the kept weights, GeGLU experts, every layer sparse."""
    return MoeConfig(
        num_experts=num_experts,
        top_k=top_k,
        expert_inner_dim=expert_inner_dim,
        scoring="softmax",
        norm_topk=True,
        activation="gelu_tanh",
        router_norm_eps=1e-6,
        per_expert_scale=True,
    )
