"""Mixture-of-experts feed-forward: a top-k router, experts stored as stacked tensors, a grouped
dispatch, optional shared experts, and the router's load-balancing loss and statistics.

The router scores every token against every expert and keeps ``top_k`` of them:

- ``softmax`` scoring (Mixtral, Qwen3-MoE, gpt-oss): softmax over the experts; with
  ``norm_topk`` the kept probabilities are renormalised to sum to one (computed as a softmax
  over the kept logits, which is the same number, as gpt-oss does).
- ``sigmoid`` scoring (DeepSeek-V3): independent sigmoid scores; a learned ``correction bias``
  shifts which experts are *chosen* (not their weights), and with ``num_groups`` > 1 only
  experts of the ``topk_groups`` best groups are eligible (a group's score is the sum of its
  two best experts).

Either way the kept weights are multiplied by ``routed_scaling_factor``.

The experts are three stacked tensors ``gate_proj``/``up_proj`` ``[experts, inner, dim]`` and
``down_proj`` ``[experts, dim, inner]`` (each expert's slice is an ``nn.Linear`` weight, so
per-expert checkpoints stack without a transpose). The dispatch sorts the ``tokens * top_k``
assignments by expert, runs each projection as one grouped product over the experts' runs of
rows (``F.grouped_mm``; a product per expert where PyTorch lacks it), and adds the weighted
results back with one ``index_add_`` (no Python loop over tokens).

Example:
    >>> moe = MoEFeedForward(64, MoeConfig(num_experts=4, top_k=2, expert_inner_dim=32))
    >>> moe(torch.randn(2, 5, 64)).shape
    torch.Size([2, 5, 64])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import ConfigError
from lmhub.nn.ffn import ACTIVATIONS, GLUFeedForward, get_activation

RouterScoring = Literal["softmax", "sigmoid"]
"""How the router turns logits into expert scores."""


@dataclass(kw_only=True)
class MoeConfig:
    """The shape and routing of a mixture-of-experts feed-forward (one per sparse layer)."""

    num_experts: int = 8
    """The number of routed experts (HF ``num_local_experts`` / ``num_experts`` /
    ``n_routed_experts``)."""

    top_k: int = 2
    """How many experts each token is sent to (HF ``num_experts_per_tok``)."""

    expert_inner_dim: int = 14336
    """The inner width of each expert's gated feed-forward (HF ``moe_intermediate_size``, or
    ``intermediate_size`` for Mixtral and gpt-oss)."""

    scoring: RouterScoring = "softmax"
    """``softmax`` over the experts (Mixtral, Qwen3-MoE, gpt-oss) or per-expert ``sigmoid``
    (DeepSeek-V3)."""

    norm_topk: bool = True
    """Whether the kept top-k weights are renormalised to sum to one (HF ``norm_topk_prob``;
    Mixtral and gpt-oss always do)."""

    routed_scaling_factor: float = 1.0
    """A factor on the routed experts' weights (DeepSeek-V3's 2.5)."""

    num_groups: int = 1
    """The number of expert groups for group-limited routing (HF ``n_group``)."""

    topk_groups: int = 1
    """How many groups a token may pick experts from (HF ``topk_group``)."""

    correction_bias: bool = False
    """Whether the router has a per-expert bias added to the scores for choosing only
    (DeepSeek-V3's ``e_score_correction_bias``)."""

    router_bias: bool = False
    """Whether the router's projection has a bias (gpt-oss)."""

    expert_bias: bool = False
    """Whether each expert's projections have biases (gpt-oss)."""

    activation: str = "silu"
    """The activation of each expert's gate (see :data:`lmhub.nn.ffn.ACTIVATIONS`)."""

    swiglu_limit: float | None = None
    """With a limit, the experts use gpt-oss's clamped SwiGLU: ``gate`` clamped above and
    ``up`` clamped to ``[-limit, limit]``, then ``(up + 1) * gate * sigmoid(alpha * gate)``."""

    swiglu_alpha: float = 1.702
    """The sigmoid slope of the clamped SwiGLU (used only with ``swiglu_limit``)."""

    num_shared_experts: int = 0
    """The number of always-on shared experts, run as one gated feed-forward of
    ``num_shared_experts * expert_inner_dim`` (DeepSeek's ``n_shared_experts``)."""

    shared_inner_dim: int | None = None
    """The inner width of the shared expert when it is not ``num_shared_experts *
    expert_inner_dim`` (Qwen2-MoE's ``shared_expert_intermediate_size``)."""

    shared_gate: bool = False
    """Whether the shared expert's output is scaled by ``sigmoid(linear(x))`` (Qwen2-MoE)."""

    aux_loss_coef: float = 0.0
    """The weight of the load-balancing loss added to the training loss (HF
    ``router_aux_loss_coef``); 0 turns it off."""

    first_dense_layers: int = 0
    """The first layers use a dense feed-forward instead (DeepSeek's
    ``first_k_dense_replace``)."""

    dense_layers: list[int] | None = None
    """Further layer indices with a dense feed-forward (Qwen-MoE's ``mlp_only_layers``)."""

    router_norm_eps: float | None = None
    """With a value, the router first RMS-normalises its input (this epsilon, no weight) and
    multiplies it by a learned per-channel ``scale`` and ``1 / sqrt(model_dim)`` (Gemma 4);
    ``None`` routes the input as is."""

    per_expert_scale: bool = False
    """Whether each kept weight is multiplied by a learned scale of its expert (Gemma 4's
    ``per_expert_scale``, applied after the top-k renormalisation)."""

    def shared_width(self) -> int:
        """Return the inner width of the shared expert (0: none)."""
        if self.shared_inner_dim is not None:
            return self.shared_inner_dim
        return self.num_shared_experts * self.expert_inner_dim

    def layer_is_sparse(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` has a mixture-of-experts feed-forward."""
        return layer_idx >= self.first_dense_layers and layer_idx not in (self.dense_layers or ())

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` if the fields do not describe a valid MoE."""
        for name in ("num_experts", "top_k", "expert_inner_dim", "num_groups", "topk_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(
                    f"'moe.{name}' must be a positive integer, not {value!r}.",
                    field=f"moe.{name}",
                    value=value,
                )
        if self.top_k > self.num_experts:
            raise ConfigError(
                f"'moe.top_k' is {self.top_k}, more than the {self.num_experts} experts. Route "
                "each token to at most 'moe.num_experts' experts.",
                field="moe.top_k",
                value=self.top_k,
            )
        if self.scoring not in ("softmax", "sigmoid"):
            raise ConfigError(
                f"'moe.scoring' is '{self.scoring}'; use 'softmax' or 'sigmoid'.",
                field="moe.scoring",
                value=self.scoring,
            )
        if self.num_experts % self.num_groups or self.topk_groups > self.num_groups:
            raise ConfigError(
                f"'moe.num_groups' ({self.num_groups}) must divide 'moe.num_experts' "
                f"({self.num_experts}) and be at least 'moe.topk_groups' ({self.topk_groups}).",
                field="moe.num_groups",
                value=self.num_groups,
            )
        if self.num_groups > 1 and self.num_experts // self.num_groups < 2:
            raise ConfigError(
                f"Group-limited routing scores a group by its two best experts, but "
                f"'moe.num_groups' {self.num_groups} leaves fewer than two experts per group.",
                field="moe.num_groups",
                value=self.num_groups,
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"'moe.activation' is '{self.activation}', which lmhub does not know. Use one "
                f"of: {', '.join(ACTIVATIONS)}.",
                field="moe.activation",
                value=self.activation,
            )
        for name in ("routed_scaling_factor", "swiglu_alpha"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"'moe.{name}' must be a positive number, not {getattr(self, name)!r}.",
                    field=f"moe.{name}",
                    value=getattr(self, name),
                )
        if self.swiglu_limit is not None and not self.swiglu_limit > 0:
            raise ConfigError(
                f"'moe.swiglu_limit' must be a positive number or null, not {self.swiglu_limit!r}.",
                field="moe.swiglu_limit",
                value=self.swiglu_limit,
            )
        if not self.aux_loss_coef >= 0:
            raise ConfigError(
                f"'moe.aux_loss_coef' must be zero or positive, not {self.aux_loss_coef!r}.",
                field="moe.aux_loss_coef",
                value=self.aux_loss_coef,
            )
        if self.router_norm_eps is not None and not self.router_norm_eps > 0:
            raise ConfigError(
                f"'moe.router_norm_eps' must be a positive number or null, not "
                f"{self.router_norm_eps!r}.",
                field="moe.router_norm_eps",
                value=self.router_norm_eps,
            )
        if self.num_shared_experts < 0 or self.first_dense_layers < 0:
            raise ConfigError(
                "'moe.num_shared_experts' and 'moe.first_dense_layers' must not be negative.",
                field="moe.num_shared_experts",
                value=self.num_shared_experts,
            )


class Router(nn.Module):
    """Scores tokens against experts and picks ``top_k`` of them (see the module docstring).

    ``weight`` is ``[experts, dim]``; ``bias`` (gpt-oss) and ``e_score_correction_bias``
    (DeepSeek-V3, a parameter so checkpoints carry it) are ``[experts]``. With
    ``router_norm_eps`` the input is RMS-normed and scaled by ``scale`` ``[dim]`` first, and
    with ``per_expert_scale`` the kept weights are scaled by ``per_expert_scale`` ``[experts]``
    (Gemma 4).
    """

    def __init__(self, model_dim: int, config: MoeConfig) -> None:
        super().__init__()
        self.top_k = config.top_k
        self.scoring = config.scoring
        self.norm_topk = config.norm_topk
        self.routed_scaling_factor = config.routed_scaling_factor
        self.num_groups = config.num_groups
        self.topk_groups = config.topk_groups
        self.weight = nn.Parameter(torch.empty(config.num_experts, model_dim))
        self.bias = nn.Parameter(torch.empty(config.num_experts)) if config.router_bias else None
        # Not trained by gradients (none reach it through the top-k choice): DeepSeek adjusts it
        # from the load between steps.
        self.e_score_correction_bias = (
            nn.Parameter(torch.zeros(config.num_experts), requires_grad=False)
            if config.correction_bias
            else None
        )
        self.norm_eps = config.router_norm_eps
        self.scale = (
            nn.Parameter(torch.ones(model_dim)) if config.router_norm_eps is not None else None
        )
        self.per_expert_scale = (
            nn.Parameter(torch.ones(config.num_experts)) if config.per_expert_scale else None
        )

    def _normed(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None or self.norm_eps is None:
            return x
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.norm_eps)
        return h.to(x.dtype) * self.scale * x.shape[-1] ** -0.5

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route ``x`` ``[tokens, dim]``: return the logits ``[tokens, experts]``, the kept
        weights ``[tokens, top_k]`` (float32) and their expert indices ``[tokens, top_k]``."""
        if self.scoring == "sigmoid":
            # DeepSeek-V3 routes in float32 whatever the model's dtype.
            logits = F.linear(x.float(), self.weight.float())
            return logits, *self._sigmoid_topk(logits)
        logits = F.linear(self._normed(x), self.weight, self.bias)
        if self.norm_topk:
            top, indices = torch.topk(logits.float(), self.top_k, dim=-1)
            weights = torch.softmax(top, dim=-1)
        else:
            probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
            weights, indices = torch.topk(probs, self.top_k, dim=-1)
        if self.routed_scaling_factor != 1.0:
            weights = weights * self.routed_scaling_factor
        if self.per_expert_scale is not None:
            weights = weights * self.per_expert_scale[indices]
        return logits, weights, indices

    def _sigmoid_topk(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = logits.sigmoid()
        choice = scores
        if self.e_score_correction_bias is not None:
            choice = scores + self.e_score_correction_bias.float()
        if self.num_groups > 1:
            t, e = choice.shape
            grouped = choice.view(t, self.num_groups, e // self.num_groups)
            group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
            best = group_scores.topk(self.topk_groups, dim=-1, sorted=False).indices
            keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, best, True)
            choice = choice.masked_fill(
                ~keep.repeat_interleave(e // self.num_groups, 1), -torch.inf
            )
        indices = choice.topk(self.top_k, dim=-1, sorted=False).indices
        weights = scores.gather(1, indices)
        if self.norm_topk:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return weights * self.routed_scaling_factor, indices

    @torch.no_grad()
    def init_params_(self, std: float) -> None:
        """Weight from normal(0, ``std``), the biases zero (the correction bias starts at 0),
        the input and per-expert scales one."""
        nn.init.normal_(self.weight, mean=0.0, std=std)
        for bias in (self.bias, self.e_score_correction_bias):
            if bias is not None:
                nn.init.zeros_(bias)
        for scale in (self.scale, self.per_expert_scale):
            if scale is not None:
                nn.init.ones_(scale)


class Experts(nn.Module):
    """``num_experts`` gated feed-forwards stored as stacked tensors, run by a grouped dispatch.

    ``gate_proj``/``up_proj`` are ``[experts, inner, dim]``, ``down_proj`` ``[experts, dim,
    inner]``; with ``bias`` also ``gate_bias``/``up_bias`` ``[experts, inner]`` and
    ``down_bias`` ``[experts, dim]``.
    """

    def __init__(self, model_dim: int, config: MoeConfig) -> None:
        super().__init__()
        e, i, d = config.num_experts, config.expert_inner_dim, model_dim
        self.num_experts = e
        self.activation = config.activation
        self._act = get_activation(config.activation)
        self.swiglu_limit = config.swiglu_limit
        self.swiglu_alpha = config.swiglu_alpha
        self.gate_proj = nn.Parameter(torch.empty(e, i, d))
        self.up_proj = nn.Parameter(torch.empty(e, i, d))
        self.down_proj = nn.Parameter(torch.empty(e, d, i))
        self.gate_bias: nn.Parameter | None = None
        self.up_bias: nn.Parameter | None = None
        self.down_bias: nn.Parameter | None = None
        if config.expert_bias:
            self.gate_bias = nn.Parameter(torch.empty(e, i))
            self.up_bias = nn.Parameter(torch.empty(e, i))
            self.down_bias = nn.Parameter(torch.empty(e, d))

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Return ``sum_k weights[t, k] * expert[indices[t, k]](x[t])`` for ``x`` ``[tokens, dim]``.

        The ``tokens * top_k`` assignments are sorted by expert (stably, so each token's
        contributions are added in expert order, as transformers adds them). Each projection is
        then one grouped matrix product over the runs of rows (``F.grouped_mm``, no host sync),
        or, where PyTorch has none for the device (``kernel="loop"``), one product per expert.
        """
        k = indices.shape[1]
        flat = indices.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token_of = order // k
        rows = x[token_of]
        if self._use_grouped_mm(x):
            y = self._grouped(rows, flat[order], torch.bincount(flat, minlength=self.num_experts))
        else:
            y = self._loop(rows, torch.bincount(flat, minlength=self.num_experts).tolist())
        y = y * weights.reshape(-1)[order, None]
        return torch.zeros_like(x).index_add_(0, token_of, y.to(x.dtype))

    kernel: Literal["auto", "grouped_mm", "loop"] = "auto"
    """How the experts run: ``auto`` takes ``F.grouped_mm`` where PyTorch has it for the device
    (CPU, except float32 under ``torch.compile``; CUDA from compute capability 8.0), else a loop
    over the experts that got tokens."""

    def _use_grouped_mm(self, x: torch.Tensor) -> bool:
        if self.kernel != "auto":
            return self.kernel == "grouped_mm"
        if not hasattr(F, "grouped_mm"):
            return False
        if x.device.type == "cuda":
            return torch.cuda.get_device_capability(x.device) >= (8, 0)
        if torch.compiler.is_compiling() and x.dtype != torch.bfloat16:
            # torch.compile's shape propagation for CPU grouped_mm accepts bfloat16 only
            # (torch 2.13), though the eager kernel runs float32: the loop compiles instead.
            return False
        return x.device.type == "cpu"

    def _grouped(
        self, rows: torch.Tensor, expert_of: torch.Tensor, counts: torch.Tensor
    ) -> torch.Tensor:
        """All experts over ``rows`` sorted by expert (``expert_of``), ``counts`` rows each."""
        offs = counts.cumsum(0).to(torch.int32)

        def proj(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            # grouped_mm needs one dtype (autocast does not cover it).
            out = F.grouped_mm(h.to(w.dtype), w.transpose(-2, -1), offs=offs)
            return out if b is None else out + b[expert_of]

        gate = proj(rows, self.gate_proj, self.gate_bias)
        up = proj(rows, self.up_proj, self.up_bias)
        return proj(self._glu(gate, up), self.down_proj, self.down_bias)

    def _loop(self, rows: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Each expert that got rows over its run of ``rows`` (sorted by expert)."""
        # unbind once: indexing a stacked weight per expert would make its backward write a
        # full-size zero gradient per expert.
        none = [None] * self.num_experts
        stacked = (self.gate_proj, self.gate_bias, self.up_proj, self.up_bias)
        stacked += (self.down_proj, self.down_bias)
        params = [none if p is None else p.unbind(0) for p in stacked]
        outs = []
        for e, part in enumerate(rows.split(counts)):
            if counts[e]:
                gate_w, gate_b, up_w, up_b, down_w, down_b = (p[e] for p in params)
                h = self._glu(F.linear(part, gate_w, gate_b), F.linear(part, up_w, up_b))
                outs.append(F.linear(h, down_w, down_b))
        return torch.cat(outs)

    def _glu(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.swiglu_limit is None:
            return self._act(gate) * up
        # gpt-oss's clamped SwiGLU
        limit = self.swiglu_limit
        gate = gate.clamp(max=limit)
        up = up.clamp(min=-limit, max=limit)
        return (up + 1) * (gate * torch.sigmoid(gate * self.swiglu_alpha))

    @torch.no_grad()
    def init_params_(self, std: float) -> None:
        """Weights from normal(0, ``std``), biases zero."""
        for w in (self.gate_proj, self.up_proj, self.down_proj):
            nn.init.normal_(w, mean=0.0, std=std)
        for b in (self.gate_bias, self.up_bias, self.down_bias):
            if b is not None:
                nn.init.zeros_(b)

    def extra_repr(self) -> str:
        e, i, d = self.gate_proj.shape
        clamp = f", swiglu_limit={self.swiglu_limit}" if self.swiglu_limit is not None else ""
        return f"experts={e}, dim={d}, inner={i}, activation={self.activation}{clamp}"


@dataclass
class RouterStats:
    """What one MoE layer's router did in its last forward (in training, or when recording)."""

    tokens_per_expert: torch.Tensor
    """How many of the ``tokens * top_k`` assignments each expert got, ``[experts]`` (float32,
    no gradient)."""

    prob_sum: torch.Tensor
    """The sum over tokens of each expert's softmax probability, ``[experts]`` (float32, with
    gradient: the load-balancing loss differentiates through it)."""

    num_tokens: int
    """How many tokens were routed."""


class MoEFeedForward(nn.Module):
    """A mixture-of-experts feed-forward: router, routed experts, optional shared expert.

    After a forward in training mode (or with ``record_stats`` set), :attr:`stats` holds the
    router statistics that :func:`load_balancing_loss` and logging read.

    ``input_norm`` normalises what the experts (routed and shared) see while the router reads
    the input as is (Gemma 4's ``pre_feedforward_layernorm_2``).
    """

    def __init__(
        self, model_dim: int, config: MoeConfig, *, input_norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        config.validate()
        self.num_experts = config.num_experts
        self.top_k = config.top_k
        self.aux_loss_coef = config.aux_loss_coef
        self.router = Router(model_dim, config)
        self.experts = Experts(model_dim, config)
        width = config.shared_width()
        self.shared_experts = (
            GLUFeedForward(model_dim, width, activation=config.activation) if width else None
        )
        self.shared_gate = (
            nn.Linear(model_dim, 1, bias=False) if width and config.shared_gate else None
        )
        self.input_norm = input_norm
        self.record_stats = False
        """Record :attr:`stats` outside training too (for logging an evaluation)."""
        self.stats: RouterStats | None = None
        """The router statistics of the last recorded forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        logits, weights, indices = self.router(flat)
        # Only this forward's: an evaluation must not see the last training step's statistics.
        record = self.training or self.record_stats
        self.stats = _router_stats(logits, indices, self.num_experts) if record else None
        if self.input_norm is not None:
            flat = self.input_norm(flat)
        out = self.experts(flat, indices, weights)
        if self.shared_experts is not None:
            shared = self.shared_experts(flat)
            if self.shared_gate is not None:
                shared = torch.sigmoid(self.shared_gate(flat)) * shared
            out = out + shared
        return out.view(shape)


def _router_stats(logits: torch.Tensor, indices: torch.Tensor, num_experts: int) -> RouterStats:
    probs = torch.softmax(logits.float(), dim=-1)
    counts = torch.zeros(num_experts, device=logits.device, dtype=torch.float32)
    counts.index_add_(
        0, indices.reshape(-1), torch.ones_like(indices.reshape(-1), dtype=counts.dtype)
    )
    return RouterStats(counts, probs.sum(dim=0), logits.shape[0])


def load_balancing_loss(stats: list[RouterStats]) -> torch.Tensor:
    """The Switch-Transformer load-balancing loss over the layers' router statistics.

    ``num_experts * sum_e f_e * P_e``, where ``f_e`` is expert ``e``'s top-k assignments per
    token and ``P_e`` its mean softmax probability, both over every token of every layer: the
    value of transformers' ``load_balancing_loss_func`` without an attention mask (padding
    tokens count; the gradient flows through ``P_e`` only).
    """
    counts = torch.stack([s.tokens_per_expert for s in stats]).sum(0)
    probs = torch.stack([s.prob_sum for s in stats]).sum(0)
    rows = sum(s.num_tokens for s in stats)
    return (counts / rows * (probs / rows)).sum() * counts.shape[0]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(total, active per token)`` parameter counts of ``model``: a token runs
    ``top_k`` of each MoE layer's routed experts, so the others' share is not active (shared
    experts, the router and everything outside the MoE layers are). Embeddings count in both.

    Example:
        >>> total, active = count_parameters(model)
    """
    total = sum(p.numel() for p in model.parameters())
    idle = 0
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            per_expert = sum(p.numel() for p in module.experts.parameters()) // module.num_experts
            idle += (module.num_experts - module.top_k) * per_expert
    return total, total - idle


def auxiliary_loss(model: nn.Module) -> torch.Tensor | None:
    """The weighted load-balancing loss of ``model``'s MoE layers over their last recorded
    forward (``aux_loss_coef * load_balancing_loss``), or ``None`` when there is none to add
    (no MoE layer, a zero coefficient, or an evaluation forward)."""
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    stats = [m.stats for m in layers if m.stats is not None]
    coef = max((m.aux_loss_coef for m in layers), default=0.0)
    if not stats or coef == 0:
        return None
    return coef * load_balancing_loss(stats)


def router_load(model: nn.Module) -> torch.Tensor | None:
    """Tokens per expert, ``[moe layers, experts]``, of the MoE layers' last recorded forward
    (``None`` when nothing was recorded), for logging how evenly the routers spread tokens."""
    stats = [m.stats for m in model.modules() if isinstance(m, MoEFeedForward)]
    if not stats or any(s is None for s in stats):
        return None
    return torch.stack([s.tokens_per_expert for s in stats if s is not None])


class DenseMoEFeedForward(nn.Module):
    """A normed dense gated feed-forward, and optionally a mixture of experts beside it on the
    same input, their outputs summed (Gemma 4's feed-forward; its MoE model has both)::

        dense_post_norm(dense(dense_norm(x))) + moe_post_norm(moe(x))

    Without ``moe`` (and ``dense_post_norm``) it is ``dense(dense_norm(x))``. The ``moe``
    normalises its experts' input itself (its ``input_norm``); its router reads ``x`` as is.
    """

    def __init__(
        self,
        *,
        dense_norm: nn.Module,
        dense: nn.Module,
        dense_post_norm: nn.Module | None = None,
        moe: MoEFeedForward | None = None,
        moe_post_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (moe is None) != (moe_post_norm is None):
            raise ConfigError(
                "DenseMoEFeedForward got only one of moe and moe_post_norm. Give both, or "
                "neither for a dense feed-forward.",
                field="moe",
            )
        self.dense_norm = dense_norm
        self.dense = dense
        # None is a plain attribute: the dense-only form has no such state-dict keys.
        self.dense_post_norm = dense_post_norm
        self.moe = moe
        self.moe_post_norm = moe_post_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dense(self.dense_norm(x))
        if self.dense_post_norm is not None:
            out = self.dense_post_norm(out)
        if self.moe is not None and self.moe_post_norm is not None:
            out = out + self.moe_post_norm(self.moe(x))
        return out
