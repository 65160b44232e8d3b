"""Gated DeltaNet linear attention (Yang, Kautz & Hatamizadeh, 2024), as Qwen3-Next and Qwen3.5
use it in their hybrid layers, in plain PyTorch.

Each value head keeps a ``[k_head_dim, v_head_dim]`` state matrix ``S``. A token with (L2-normed)
key ``k``, value ``v``, query ``q``, write strength ``beta`` in (0, 1) and log-decay ``g`` <= 0
updates and reads it as

    S <- exp(g) * S
    S <- S + k (beta * (v - S^T k))^T          (the delta rule: write only what S mispredicts)
    o  = S^T q / sqrt(k_head_dim)

:func:`recurrent_gated_delta_rule` runs that loop token by token (decoding: one token per
step). :func:`chunked_gated_delta_rule` gives the same result for a whole prompt with matrix
products: within a chunk of ``chunk_size`` tokens the sequential writes are folded into one
triangular solve (the WY/UT form of a product of Householder-like updates), and only the
chunk-to-chunk state hand-over is sequential.

The layer (:class:`GatedDeltaNet`) projects ``q``/``k``/``v`` in one product, mixes them along
time with a causal depthwise convolution (kernel ``conv_kernel``, SiLU), derives ``beta`` and
``g`` per value head (``g = -exp(A_log) * softplus(a + dt_bias)``), runs the rule, normalises
each head's output and gates it with ``silu(z)`` (:class:`GatedRMSNorm`), then projects out.
With a cache, the last ``conv_kernel - 1`` pre-convolution inputs and the state matrices are
carried between calls in ``cache.layer_states[layer_idx]``.

Parameter names follow transformers' ``Qwen3_5GatedDeltaNet`` so checkpoints load by renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.nn.kv_cache import KVCache


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(sum(x^2) + eps)`` over the last dimension (the FLA library's form)."""
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + eps)


def _prepare(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Heads first, float32, keys/queries L2-normed (queries also scaled), q/k heads repeated
    to the value heads (each q/k head serves a run of consecutive value heads)."""
    rep = v.shape[2] // k.shape[2]
    if rep > 1:
        q, k = q.repeat_interleave(rep, dim=2), k.repeat_interleave(rep, dim=2)
    q, k, v, g, beta = (t.transpose(1, 2).float().contiguous() for t in (q, k, v, g, beta))
    q, k = l2_normalize(q), l2_normalize(k)
    return q * q.shape[-1] ** -0.5, k, v, g, beta


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the gated delta rule token by token.

    Args:
        q, k: ``[batch, seq, qk_heads, k_dim]`` (not yet normed).
        v: ``[batch, seq, v_heads, v_dim]``; ``v_heads`` is a multiple of ``qk_heads``.
        g: log-decay ``[batch, seq, v_heads]`` (<= 0).
        beta: write strength ``[batch, seq, v_heads]``.
        state: ``[batch, v_heads, k_dim, v_dim]`` carried in (float32), or ``None`` for zeros.

    Returns:
        The output ``[batch, seq, v_heads, v_dim]`` in ``v``'s dtype and the final state.
    """
    dtype = v.dtype
    q, k, v, g, beta = _prepare(q, k, v, g, beta)
    b, h, s, dk = k.shape
    if state is None:
        state = v.new_zeros(b, h, dk, v.shape[-1])
    state = state.float()
    out = torch.empty_like(v)
    for t in range(s):
        state = state * g[:, :, t].exp()[..., None, None]
        predicted = (state * k[:, :, t, :, None]).sum(dim=-2)
        delta = (v[:, :, t] - predicted) * beta[:, :, t, None]
        state = state + k[:, :, t, :, None] * delta[:, :, None, :]
        out[:, :, t] = (state * q[:, :, t, :, None]).sum(dim=-2)
    return out.transpose(1, 2).to(dtype), state


def chunked_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
    *,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the gated delta rule over whole chunks of the sequence (prefill and training).

    Same arguments and results as :func:`recurrent_gated_delta_rule`; equal to it up to float
    rounding.
    """
    dtype = v.dtype
    q, k, v, g, beta = _prepare(q, k, v, g, beta)
    b, h, s, dk = k.shape
    dv = v.shape[-1]
    c = chunk_size
    pad = -s % c
    if pad:  # zero-padded tail: zero keys/values write nothing, zero decay keeps the state
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        g, beta = F.pad(g, (0, pad)), F.pad(beta, (0, pad))
    n = (s + pad) // c
    q, k, v = (t.view(b, h, n, c, -1) for t in (q, k, v))
    g, beta = g.view(b, h, n, c), beta.view(b, h, n, c)

    k_beta, v_beta = k * beta[..., None], v * beta[..., None]
    cum = g.cumsum(dim=-1)  # log of the decay from the chunk start through each position
    # decay[i, j] = exp(cum_i - cum_j) for j <= i: what a write at j has decayed to by i.
    above = torch.ones(c, c, dtype=torch.bool, device=q.device).triu(1)
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(above, float("-inf")).exp()

    # The chunk's sequential writes as one unit-lower-triangular system (diagonal implied).
    system = (k_beta @ k.transpose(-1, -2)) * decay
    u = torch.linalg.solve_triangular(system, v_beta, upper=False, unitriangular=True)
    w = torch.linalg.solve_triangular(
        system, k_beta * cum.exp()[..., None], upper=False, unitriangular=True
    )
    scores = (q @ k.transpose(-1, -2)) * decay  # within-chunk attention, causal
    q_decayed = q * cum.exp()[..., None]
    k_to_end = k * (cum[..., -1:] - cum).exp()[..., None]
    chunk_decay = cum[..., -1].exp()[..., None, None]

    if state is None:
        state = v.new_zeros(b, h, dk, dv)
    state = state.float()
    out = torch.empty_like(v)
    for i in range(n):
        new_v = u[:, :, i] - w[:, :, i] @ state  # what the state does not already predict
        out[:, :, i] = q_decayed[:, :, i] @ state + scores[:, :, i] @ new_v
        state = state * chunk_decay[:, :, i] + k_to_end[:, :, i].transpose(-1, -2) @ new_v
    out = out.view(b, h, n * c, dv)[:, :, :s]
    return out.transpose(1, 2).to(dtype), state


class GatedRMSNorm(nn.Module):
    """RMSNorm of each head's output, scaled by ``weight`` and gated by ``silu(gate)`` (the
    gate in float32), as Qwen3-Next/Qwen3.5's linear-attention output norm."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the scale to ones."""
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        h = self.weight * h.to(dtype)
        return (h * F.silu(gate.float())).to(dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class GatedDeltaNet(nn.Module):
    """A Gated DeltaNet token mixer (see the module docstring).

    Example:
        >>> mixer = GatedDeltaNet(64, num_k_heads=2, num_v_heads=4, k_head_dim=16, v_head_dim=16)
        >>> mixer(torch.randn(1, 5, 64)).shape
        torch.Size([1, 5, 64])
    """

    def __init__(
        self,
        model_dim: int,
        *,
        num_k_heads: int,
        num_v_heads: int,
        k_head_dim: int,
        v_head_dim: int,
        conv_kernel: int = 4,
        norm_eps: float = 1e-6,
        chunk_size: int = 64,
        layer_idx: int = 0,
    ) -> None:
        super().__init__()
        if num_v_heads % num_k_heads:
            raise ValueError(
                f"num_v_heads ({num_v_heads}) must be a multiple of num_k_heads ({num_k_heads})."
            )
        self.num_k_heads = num_k_heads
        self.num_v_heads = num_v_heads
        self.k_head_dim = k_head_dim
        self.v_head_dim = v_head_dim
        self.conv_kernel = conv_kernel
        self.chunk_size = chunk_size
        self.layer_idx = layer_idx
        key_dim, value_dim = num_k_heads * k_head_dim, num_v_heads * v_head_dim
        conv_dim = 2 * key_dim + value_dim
        self.in_proj_qkv = nn.Linear(model_dim, conv_dim, bias=False)
        self.in_proj_z = nn.Linear(model_dim, value_dim, bias=False)
        self.in_proj_b = nn.Linear(model_dim, num_v_heads, bias=False)
        self.in_proj_a = nn.Linear(model_dim, num_v_heads, bias=False)
        # Depthwise: one kernel per channel, weight [channels, 1, kernel] as in checkpoints.
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, conv_kernel, groups=conv_dim, bias=False)
        self.dt_bias = nn.Parameter(torch.empty(num_v_heads))
        self.A_log = nn.Parameter(torch.empty(num_v_heads))
        self.norm = GatedRMSNorm(v_head_dim, eps=norm_eps)
        self.out_proj = nn.Linear(value_dim, model_dim, bias=False)

    @torch.no_grad()
    def init_params_(self, std: float) -> None:
        """Draw the conv kernels from normal(0, ``std``), set ``dt_bias`` to ones and ``A_log``
        to the log of uniform(0.01, 16) decay rates (transformers' init)."""
        nn.init.normal_(self.conv1d.weight, mean=0.0, std=std)
        nn.init.ones_(self.dt_bias)
        self.A_log.copy_(torch.empty_like(self.A_log).uniform_(0.01, 16).log_())

    def forward(
        self,
        x: torch.Tensor,
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = True,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Mix ``x`` ``[batch, seq, dim]`` along time, continuing from ``cache``'s state.

        ``mask`` is a ``[batch, seq]`` padding mask of these tokens (1 = real; padded positions
        are zeroed before mixing, so they write nothing); ``rope`` and ``is_causal`` are
        accepted for a uniform layer interface and unused (the mixer is causal by design).
        """
        del rope, is_causal
        if mask is not None:
            x = x * mask[:, :, None].to(x.dtype)
        b, s, _ = x.shape
        states = cache.layer_states.get(self.layer_idx) if cache is not None else None

        mixed = self.in_proj_qkv(x).transpose(1, 2)  # [b, channels, s]
        past = mixed.new_zeros(b, mixed.shape[1], self.conv_kernel - 1)
        if states is not None:
            past = states["conv"].to(mixed.dtype)
        window = torch.cat([past, mixed], dim=-1)
        mixed = F.silu(F.conv1d(window, self.conv1d.weight, groups=window.shape[1]))
        key_dim = self.num_k_heads * self.k_head_dim
        q, k, v = mixed.transpose(1, 2).split([key_dim, key_dim, mixed.shape[1] - 2 * key_dim], -1)
        q = q.reshape(b, s, -1, self.k_head_dim)
        k = k.reshape(b, s, -1, self.k_head_dim)
        v = v.reshape(b, s, -1, self.v_head_dim)

        beta = self.in_proj_b(x).sigmoid()
        # In float32: in half precision exp(A_log) * softplus(...) may overflow to -inf.
        g = -self.A_log.float().exp() * F.softplus(self.in_proj_a(x).float() + self.dt_bias)
        state = states["recurrent"] if states is not None else None
        if s == 1 and state is not None:
            out, state = recurrent_gated_delta_rule(q, k, v, g, beta, state)
        else:
            out, state = chunked_gated_delta_rule(
                q, k, v, g, beta, state, chunk_size=self.chunk_size
            )
        if cache is not None:
            cache.layer_states[self.layer_idx] = {
                "conv": window[:, :, window.shape[-1] - (self.conv_kernel - 1) :],
                "recurrent": state,
            }
        z = self.in_proj_z(x).reshape(b, s, -1, self.v_head_dim)
        out = self.norm(out, z).reshape(b, s, -1)
        return self.out_proj(out)

    def extra_repr(self) -> str:
        return (
            f"layer_idx={self.layer_idx}, k_heads={self.num_k_heads}, v_heads={self.num_v_heads}, "
            f"k_head_dim={self.k_head_dim}, v_head_dim={self.v_head_dim}, "
            f"conv_kernel={self.conv_kernel}"
        )
