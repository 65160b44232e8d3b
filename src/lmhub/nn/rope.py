"""Rotary position embeddings (RoPE) in the rotate-half layout that Hugging Face Llama uses.

The frequency tables of every scaling kind follow ``transformers.modeling_rope_utils`` step by
step, in the same floating-point order, so that cos/sin come out bit-identical to transformers'.

Example::

    scaling = RopeScaling(kind="llama3", factor=8.0, original_max_seq_len=8192)
    rope = RotaryEmbedding(128, theta=500_000.0, max_seq_len=131_072, scaling=scaling)
    cos, sin = rope(position_ids, dtype=torch.bfloat16)
    q, k = apply_rotary(q, k, cos, sin)
"""

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from lmhub.errors import ConfigError

RopeKind = Literal["default", "linear", "dynamic", "llama3", "yarn", "longrope", "proportional"]

ROPE_KINDS: tuple[str, ...] = get_args(RopeKind)
"""The supported scaling kinds, spelled like Hugging Face's ``rope_type``."""


@dataclass(kw_only=True)
class RopeScaling:
    """How RoPE frequencies are stretched to reach beyond the pre-training context length.

    Mirrors one Hugging Face ``rope_parameters`` / ``rope_scaling`` dict; ``kind`` is its
    ``rope_type``. Fields that do not apply to ``kind`` are ignored.
    """

    kind: RopeKind = "default"
    """The scaling method: HF's ``rope_type``."""

    factor: float = 1.0
    """How many times longer than the original context the model should reach (>= 1)."""

    original_max_seq_len: int | None = None
    """The pre-training context length (HF ``original_max_position_embeddings``); ``None`` means
    the model's ``max_seq_len``, as transformers falls back to ``max_position_embeddings``."""

    low_freq_factor: float = 1.0
    """llama3: wavelengths above ``original_max_seq_len / low_freq_factor`` are fully scaled."""

    high_freq_factor: float = 4.0
    """llama3: wavelengths below ``original_max_seq_len / high_freq_factor`` are left alone."""

    beta_fast: float = 32.0
    """yarn: rotation count below which dimensions are interpolated (the ramp's fast end)."""

    beta_slow: float = 1.0
    """yarn: rotation count above which dimensions are extrapolated (the ramp's slow end)."""

    attention_factor: float | None = None
    """yarn: factor on cos/sin; ``None`` derives it from ``factor``, ``mscale`` and
    ``mscale_all_dim`` like transformers."""

    mscale: float | None = None
    """yarn (DeepSeek style): numerator weight of ``log(factor)`` in the derived attention
    factor."""

    mscale_all_dim: float | None = None
    """yarn (DeepSeek style): denominator weight of ``log(factor)`` in the derived attention
    factor."""

    truncate: bool = True
    """yarn: round the correction range to whole dimensions (``False`` for gpt-oss)."""

    short_factor: list[float] | None = None
    """longrope (Phi-3): per frequency, how much to stretch its wavelength while the positions
    stay within ``original_max_seq_len``; one number per rotated pair of dimensions."""

    long_factor: list[float] | None = None
    """longrope (Phi-3): the stretch per frequency once a position reaches past
    ``original_max_seq_len``. ``attention_factor`` (or, when ``None``,
    ``sqrt(1 + log(factor) / log(original_max_seq_len))``) multiplies cos/sin in both regimes."""

    partial_rotary_factor: float = 1.0
    """proportional (Gemma 4's global layers): the fraction of the head's frequency pairs that
    rotate, with exponents over the whole head width; the others get frequency zero, so those
    dimensions pass through unrotated while the table spans the whole head."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the fields do not describe a usable scaling."""
        if self.kind not in ROPE_KINDS:
            raise ConfigError(
                f"The RoPE scaling kind '{self.kind}' is not supported. Use one of: "
                f"{', '.join(ROPE_KINDS)}.",
                field="kind",
                value=self.kind,
            )
        if self.kind == "default":
            return
        if not self.factor >= 1.0:
            raise ConfigError(
                f"The '{self.kind}' RoPE scaling factor is {self.factor}, but it must be at least "
                "1. Set factor to (target context length) / (original context length).",
                field="factor",
                value=self.factor,
            )
        if self.original_max_seq_len is not None and self.original_max_seq_len <= 0:
            raise ConfigError(
                f"original_max_seq_len is {self.original_max_seq_len}, but it must be positive. "
                "Set it to the pre-training context length, or to None to use max_seq_len.",
                field="original_max_seq_len",
                value=self.original_max_seq_len,
            )
        if self.kind == "proportional" and not 0 < self.partial_rotary_factor <= 1:
            raise ConfigError(
                f"proportional RoPE rotates a fraction of each head, but partial_rotary_factor is "
                f"{self.partial_rotary_factor}. Use a fraction in (0, 1], such as Gemma 4's 0.25.",
                field="partial_rotary_factor",
                value=self.partial_rotary_factor,
            )
        if self.kind == "llama3" and not 0 < self.low_freq_factor < self.high_freq_factor:
            raise ConfigError(
                f"llama3 RoPE needs 0 < low_freq_factor < high_freq_factor, got "
                f"{self.low_freq_factor} and {self.high_freq_factor}. Llama 3.1 uses 1 and 4.",
                field="high_freq_factor",
                value=self.high_freq_factor,
            )
        if self.kind == "longrope" and (self.short_factor is None or self.long_factor is None):
            missing = "short_factor" if self.short_factor is None else "long_factor"
            raise ConfigError(
                f"longrope RoPE needs both short_factor and long_factor, but '{missing}' is "
                "missing. Give one factor per rotated pair of dimensions for each.",
                field=missing,
            )
        if self.kind == "yarn" and not (self.beta_fast > 0 and self.beta_slow > 0):
            raise ConfigError(
                f"yarn RoPE needs positive beta_fast and beta_slow, got {self.beta_fast} and "
                f"{self.beta_slow}. The YaRN paper uses 32 and 1.",
                field="beta_slow" if self.beta_fast > 0 else "beta_fast",
                value=self.beta_slow if self.beta_fast > 0 else self.beta_fast,
            )


def _check_head_dim(head_dim: int) -> None:
    if head_dim <= 0 or head_dim % 2:
        raise ConfigError(
            f"RoPE rotates pairs of dimensions, so head_dim must be positive and even, got "
            f"{head_dim}. Check the model's hidden size and number of attention heads.",
            field="head_dim",
            value=head_dim,
        )


def _plain_inv_freq(
    base: float | torch.Tensor, head_dim: int, device: torch.device | str | None
) -> torch.Tensor:
    # `base` may be a 0-dim tensor (dynamic NTK inside forward); the same expression serves both.
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    return 1.0 / (base**exponents)


def _llama3_inv_freq(inv_freq: torch.Tensor, s: RopeScaling, original: int) -> torch.Tensor:
    # Scale low frequencies by `factor`, keep high ones, blend in between (Llama 3.1).
    low_freq_wavelen = original / s.low_freq_factor
    high_freq_wavelen = original / s.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq)
    smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def _yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _yarn_inv_freq(
    head_dim: int, theta: float, s: RopeScaling, original: int, device: torch.device | str | None
) -> tuple[torch.Tensor, float]:
    def correction_dim(num_rotations: float) -> float:
        # The dimension whose wavelength fits `num_rotations` times into the original context.
        return head_dim * math.log(original / (num_rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(s.beta_fast), correction_dim(s.beta_slow)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp

    pos_freqs = theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    extrapolated = 1.0 / pos_freqs
    interpolated = 1.0 / (s.factor * pos_freqs)
    dims = torch.arange(head_dim // 2, dtype=torch.float32, device=device)
    ramp = ((dims - low) / (high - low)).clamp(0, 1)
    # Spelled as 1 - (1 - ramp) like transformers: the two roundings are not a no-op in float32.
    extrapolation = 1 - ramp
    inv_freq = interpolated * (1 - extrapolation) + extrapolated * extrapolation

    if s.attention_factor is not None:
        attention_factor = s.attention_factor
    elif s.mscale and s.mscale_all_dim:
        attention_factor = _yarn_mscale(s.factor, s.mscale) / _yarn_mscale(
            s.factor, s.mscale_all_dim
        )
    else:
        attention_factor = _yarn_mscale(s.factor)
    return inv_freq, float(attention_factor)


def _longrope_inv_freq(
    head_dim: int,
    theta: float,
    s: RopeScaling,
    original: int,
    seq_len: int | torch.Tensor | None,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, float]:
    # Phi-3's LongRoPE: the short factors up to the original length, the long ones past it.
    use_long = seq_len is not None and bool(seq_len > original)
    factors = s.long_factor if use_long else s.short_factor
    if factors is None or len(factors) != head_dim // 2:
        raise ConfigError(
            f"longrope RoPE needs {head_dim // 2} factors (one per rotated pair of the "
            f"{head_dim} rotated dimensions), but has "
            f"{'none' if factors is None else len(factors)}. Check short_factor and long_factor.",
            field="long_factor" if use_long else "short_factor",
            value=factors,
        )
    ext = torch.tensor(factors, dtype=torch.float32, device=device)
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    inv_freq = 1.0 / (ext * theta**exponents)
    if s.attention_factor is not None:
        return inv_freq, float(s.attention_factor)
    if s.factor <= 1.0:
        return inv_freq, 1.0
    return inv_freq, math.sqrt(1 + math.log(s.factor) / math.log(original))


def _proportional_inv_freq(
    head_dim: int, theta: float, s: RopeScaling, device: torch.device | str | None
) -> torch.Tensor:
    # Gemma 4's global layers: the first `rotated` pairs get the usual frequencies (exponents
    # over the whole head), the rest frequency zero (cos 1, sin 0: unrotated).
    rotated = int(s.partial_rotary_factor * head_dim // 2)
    exponents = torch.arange(0, 2 * rotated, 2, dtype=torch.int64, device=device).float()
    inv_freq = 1.0 / (theta ** (exponents / head_dim))
    zeros = torch.zeros(head_dim // 2 - rotated, dtype=torch.float32, device=device)
    return torch.cat((inv_freq, zeros)) / s.factor


def rope_inv_freq(
    head_dim: int,
    *,
    theta: float,
    scaling: RopeScaling | None,
    max_seq_len: int,
    seq_len: int | torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, float]:
    """Return ``(inv_freq, attention_scaling)``: float32 ``[head_dim // 2]`` and a float.

    ``seq_len`` (a Python int or a 0-dim integer tensor) is only used by ``dynamic`` and
    ``longrope``: the current length to stretch the base for (or, for ``longrope``, to pick the
    long factors when past the original length); ``None`` or anything below the original length
    gives the unscaled (short) table. A tensor ``seq_len`` is worked through in float32 tensor
    arithmetic, as in transformers' forward pass; an int in Python floats, as in its init
    function. The two can differ in the last bit, so each path matches its transformers
    counterpart exactly.
    ``attention_scaling`` multiplies cos/sin (it is 1 except for ``yarn`` and ``longrope``).

    >>> inv_freq, scale = rope_inv_freq(64, theta=10_000.0, scaling=None, max_seq_len=2048)
    >>> inv_freq.shape, scale
    (torch.Size([32]), 1.0)
    """
    _check_head_dim(head_dim)
    s = scaling or RopeScaling()
    s.validate()
    original = s.original_max_seq_len or max_seq_len

    if s.kind == "default":
        return _plain_inv_freq(theta, head_dim, device), 1.0
    if s.kind == "linear":
        # Dividing the frequencies equals dividing the positions by `factor`.
        return _plain_inv_freq(theta, head_dim, device) / s.factor, 1.0
    if s.kind == "dynamic":
        if seq_len is None:
            seq_len = original
        elif isinstance(seq_len, torch.Tensor):
            seq_len = seq_len.clamp(min=original)
        else:
            seq_len = max(seq_len, original)
        # NTK-aware base growth; at seq_len == original the bracket is 1 (up to rounding, which
        # transformers has too, so it is kept rather than short-cut).
        bracket = s.factor * seq_len / original - (s.factor - 1)
        base = theta * bracket ** (head_dim / (head_dim - 2))
        return _plain_inv_freq(base, head_dim, device), 1.0
    if s.kind == "llama3":
        return _llama3_inv_freq(_plain_inv_freq(theta, head_dim, device), s, original), 1.0
    if s.kind == "longrope":
        return _longrope_inv_freq(head_dim, theta, s, original, seq_len, device)
    if s.kind == "proportional":
        return _proportional_inv_freq(head_dim, theta, s, device), 1.0
    return _yarn_inv_freq(head_dim, theta, s, original, device)


class RotaryEmbedding(nn.Module):
    """Computes the cos/sin tables of rotary position embeddings for given positions.

    ``inv_freq`` is a non-persistent buffer: it never enters the state dict and is recomputed by
    :meth:`reset_non_persistent_buffers`, e.g. after building the model on the meta device.

    ``dynamic`` scaling is stateful, exactly like transformers: once positions run past the
    original length the table is stretched for the longest length seen so far, and it returns to
    the unscaled table only when a call's positions all fall below the original length again.
    """

    inv_freq: torch.Tensor
    long_inv_freq: torch.Tensor | None

    def __init__(
        self, head_dim: int, *, theta: float, max_seq_len: int, scaling: RopeScaling | None = None
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.max_seq_len = max_seq_len
        self.scaling = scaling
        self.original_max_seq_len = (scaling and scaling.original_max_seq_len) or max_seq_len
        inv_freq, self.attention_scaling = self._table(torch.get_default_device())
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # longrope: the table of the long factors, used once positions pass the original length.
        long_inv_freq = None
        if scaling is not None and scaling.kind == "longrope":
            after = torch.tensor(self.original_max_seq_len + 1, device="cpu")
            long_inv_freq, _ = self._table(inv_freq.device, after)
        self.register_buffer("long_inv_freq", long_inv_freq, persistent=False)
        self._dynamic_len = self.original_max_seq_len  # longest length the table is stretched for

    def _table(
        self, device: torch.device, seq_len: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float]:
        # Computed on the CPU and then moved, so every device gets the same bits as the reference.
        # (Also on meta builds: meta arithmetic goes through torch's reference decompositions,
        # whose first use imports torch._dynamo, costing over a second.)
        on = torch.device("cpu")
        inv_freq, scale = rope_inv_freq(
            self.head_dim,
            theta=self.theta,
            scaling=self.scaling,
            max_seq_len=self.max_seq_len,
            seq_len=None if seq_len is None else seq_len.to(on),
            device=on,
        )
        return inv_freq.to(device), scale

    def reset_non_persistent_buffers(self, device: torch.device | None = None) -> None:
        """Recompute ``inv_freq`` on ``device`` (default: where the buffer is now)."""
        device = torch.device(device) if device is not None else self.inv_freq.device
        self.inv_freq, self.attention_scaling = self._table(device)
        if self.long_inv_freq is not None:
            after = torch.tensor(self.original_max_seq_len + 1, device="cpu")
            self.long_inv_freq, _ = self._table(device, after)
        self._dynamic_len = self.original_max_seq_len

    def _update_dynamic(self, position_ids: torch.Tensor) -> None:
        # Same rules as transformers' `dynamic_rope_update`: grow on demand, reset when short.
        seq_len = position_ids.max() + 1
        if seq_len > self._dynamic_len:
            self.inv_freq, _ = self._table(self.inv_freq.device, seq_len)
            self._dynamic_len = int(seq_len)
        if seq_len < self.original_max_seq_len < self._dynamic_len:
            self.inv_freq, _ = self._table(self.inv_freq.device)
            self._dynamic_len = self.original_max_seq_len

    def forward(
        self, position_ids: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(cos, sin)``, each ``[batch, seq, head_dim]`` in ``dtype``.

        ``position_ids`` is a ``[batch, seq]`` integer tensor. The angles are computed in float32
        with autocast off, then scaled by ``attention_scaling`` and cast to ``dtype``.
        """
        if self.scaling is not None and self.scaling.kind == "dynamic":
            self._update_dynamic(position_ids)
        inv_freq = self.inv_freq
        if self.long_inv_freq is not None:
            # As transformers: one table for the whole call, long once any position passes the
            # original length (keys cached earlier keep the angles they were made with).
            past = position_ids.max() + 1 > self.original_max_seq_len
            inv_freq = torch.where(past, self.long_inv_freq, self.inv_freq)
        device_type = position_ids.device.type
        enabled = torch.amp.is_autocast_available(device_type)
        with torch.autocast(device_type if enabled else "cpu", enabled=False):
            freqs = position_ids[..., None].float() * inv_freq.float()
            emb = torch.cat((freqs, freqs), dim=-1)
            cos = emb.cos() * self.attention_scaling
            sin = emb.sin() * self.attention_scaling
        return cos.to(dtype), sin.to(dtype)

    def extra_repr(self) -> str:
        kind = self.scaling.kind if self.scaling is not None else "default"
        return f"head_dim={self.head_dim}, theta={self.theta}, kind={kind}"


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Map the halves ``(x1, x2)`` of the last dimension to ``(-x2, x1)``."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_dims(head_dim: int, fraction: float) -> int:
    """Return how many leading dimensions of each head partial RoPE rotates (as transformers:
    ``int(head_dim * fraction)``; GPT-NeoX's ``rotary_pct``, Phi's ``partial_rotary_factor``).

    >>> rotary_dims(64, 0.25)
    16
    """
    return int(head_dim * fraction)


def apply_rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries ``[batch, heads, seq, head_dim]`` and keys ``[batch, kv_heads, seq,
    head_dim]`` by the angles in ``cos``/``sin`` ``[batch, seq, rotary_dim]``.

    A ``rotary_dim`` below ``head_dim`` is partial RoPE (GPT-NeoX, Phi): only the first
    ``rotary_dim`` dimensions of each head turn, the rest pass through unchanged.
    """
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    rot = cos.shape[-1]
    if rot < q.shape[-1]:
        q_rot, q_pass = q[..., :rot], q[..., rot:]
        k_rot, k_pass = k[..., :rot], k[..., rot:]
        q = torch.cat((q_rot * cos + rotate_half(q_rot) * sin, q_pass), dim=-1)
        return q, torch.cat((k_rot * cos + rotate_half(k_rot) * sin, k_pass), dim=-1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
