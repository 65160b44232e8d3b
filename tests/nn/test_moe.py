"""The mixture-of-experts block against a naive per-token reference and transformers' blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmhub.errors import ConfigError
from lmhub.nn.moe import MoeConfig, MoEFeedForward, load_balancing_loss

DIM = 16


def _moe(seed: int = 0, **kw: object) -> MoEFeedForward:
    torch.manual_seed(seed)
    config = MoeConfig(**{"num_experts": 6, "top_k": 2, "expert_inner_dim": 12, **kw})
    moe = MoEFeedForward(DIM, config)
    moe.router.init_params_(0.3)
    moe.experts.init_params_(0.3)
    for p in moe.parameters():  # biases too, so that they matter in the comparison
        if p.dim() < 3 and p is not moe.router.weight:
            torch.nn.init.normal_(p, std=0.3)
    return moe


def _naive(moe: MoEFeedForward, x: torch.Tensor) -> torch.Tensor:
    """Route and run every token on its own, straight from the definitions."""
    r, ex = moe.router, moe.experts
    out = []
    for tok in x.reshape(-1, x.shape[-1]):
        logits = r.weight @ tok + (r.bias if r.bias is not None else 0)
        if r.scoring == "softmax":
            probs = torch.softmax(logits, -1)
            top = torch.topk(probs, r.top_k).indices
            w = probs[top] / probs[top].sum() if r.norm_topk else probs[top]
        else:
            scores = torch.sigmoid(logits)
            choice = scores + (
                r.e_score_correction_bias if r.e_score_correction_bias is not None else 0
            )
            per = len(choice) // r.num_groups
            groups = [
                sorted(choice[g * per : (g + 1) * per].tolist())[-2:] for g in range(r.num_groups)
            ]
            best = torch.topk(torch.tensor([sum(g) for g in groups]), r.topk_groups).indices
            allowed = torch.full_like(choice, -torch.inf)
            for g in best.tolist():
                allowed[g * per : (g + 1) * per] = choice[g * per : (g + 1) * per]
            top = torch.topk(allowed, r.top_k).indices
            w = scores[top] / scores[top].sum() if r.norm_topk else scores[top]
        w = w * r.routed_scaling_factor
        y = torch.zeros_like(tok)
        for e, we in zip(top.tolist(), w, strict=True):
            gate = ex.gate_proj[e] @ tok + (ex.gate_bias[e] if ex.gate_bias is not None else 0)
            up = ex.up_proj[e] @ tok + (ex.up_bias[e] if ex.up_bias is not None else 0)
            if ex.swiglu_limit is None:
                h = F.silu(gate) * up
            else:
                gate, up = (
                    gate.clamp(max=ex.swiglu_limit),
                    up.clamp(-ex.swiglu_limit, ex.swiglu_limit),
                )
                h = (up + 1) * gate * torch.sigmoid(ex.swiglu_alpha * gate)
            down = ex.down_proj[e] @ h + (ex.down_bias[e] if ex.down_bias is not None else 0)
            y = y + we * down
        if moe.shared_experts is not None:
            s = moe.shared_experts(tok)
            if moe.shared_gate is not None:
                s = torch.sigmoid(moe.shared_gate(tok)) * s
            y = y + s
        out.append(y)
    return torch.stack(out).view(x.shape)


VARIANTS = {
    "mixtral": {},
    "qwen3_no_renorm": {"norm_topk": False},
    "gpt_oss": {"router_bias": True, "expert_bias": True, "swiglu_limit": 0.5},
    "deepseek_v3": {
        "scoring": "sigmoid",
        "correction_bias": True,
        "num_groups": 3,
        "topk_groups": 2,
        "routed_scaling_factor": 2.5,
        "num_shared_experts": 1,
    },
    "qwen2_shared_gate": {"shared_inner_dim": 20, "shared_gate": True, "top_k": 3},
}


KERNELS = ["loop"] + (["grouped_mm"] if hasattr(F, "grouped_mm") else [])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_naive_per_token_reference(variant: str, kernel: str) -> None:
    moe = _moe(**VARIANTS[variant])  # type: ignore[arg-type]
    moe.experts.kernel = kernel  # type: ignore[assignment]
    x = torch.randn(3, 7, DIM)
    torch.testing.assert_close(moe(x), _naive(moe, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradients_match_reference(kernel: str) -> None:
    moe = _moe(expert_bias=True)
    moe.experts.kernel = kernel  # type: ignore[assignment]
    x = torch.randn(2, 5, DIM)
    moe(x).square().sum().backward()
    fast = {n: p.grad.clone() for n, p in moe.named_parameters()}  # type: ignore[union-attr]
    moe.zero_grad()
    _naive(moe, x).square().sum().backward()
    for name, p in moe.named_parameters():
        torch.testing.assert_close(fast[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_group_limited_routing_only_picks_from_best_groups() -> None:
    moe = _moe(scoring="sigmoid", num_groups=3, topk_groups=1, top_k=2, correction_bias=True)
    with torch.no_grad():
        moe.router.e_score_correction_bias.copy_(torch.tensor([0, 0, 5.0, 5.0, 0, 0]))  # type: ignore[union-attr]
    _, weights, indices = moe.router(torch.randn(10, DIM))
    # The bias makes group 1 (experts 2, 3) the best; the weights still come from the scores.
    assert sorted(set(indices.flatten().tolist())) == [2, 3]
    torch.testing.assert_close(weights.sum(-1), torch.ones(10))


def test_router_stats_and_load_balancing_loss() -> None:
    moe = _moe()
    moe.train()
    x = torch.randn(4, 6, DIM)
    moe(x)
    stats = moe.stats
    assert stats is not None and stats.num_tokens == 24
    assert stats.tokens_per_expert.sum() == 24 * 2
    _, _, idx = moe.router(x.reshape(-1, DIM))
    assert stats.tokens_per_expert.tolist() == torch.bincount(idx.flatten(), minlength=6).tolist()
    loss = load_balancing_loss([stats, stats])
    probs = torch.softmax(moe.router(x.reshape(-1, DIM))[0], -1)
    expected = 6 * (stats.tokens_per_expert / 24 * probs.mean(0)).sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    moe.eval()
    moe.stats = None
    moe(x)
    assert moe.stats is None  # not recorded in eval unless asked


def test_load_balancing_loss_matches_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    moe = _moe(top_k=2)
    moe.train()
    stats, logits = [], []
    for _ in range(3):
        x = torch.randn(2, 5, DIM)
        moe(x)
        stats.append(moe.stats)
        logits.append(moe.router(x.reshape(-1, DIM))[0])
    ours = load_balancing_loss(stats)  # type: ignore[arg-type]
    theirs = load_balancing_loss_func(tuple(logits), num_experts=6, top_k=2)
    torch.testing.assert_close(ours, theirs)


def test_blocks_match_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers import DeepseekV3Config, GptOssConfig, MixtralConfig
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    x = torch.randn(2, 9, DIM)
    hf_mix = MixtralSparseMoeBlock(
        MixtralConfig(hidden_size=DIM, intermediate_size=12, num_local_experts=6)
    )
    moe = _moe()
    with torch.no_grad():
        hf_mix.gate.weight.copy_(moe.router.weight)
        gate_up = torch.cat([moe.experts.gate_proj, moe.experts.up_proj], dim=1)
        hf_mix.experts.gate_up_proj.copy_(gate_up)
        hf_mix.experts.down_proj.copy_(moe.experts.down_proj)
    torch.testing.assert_close(moe(x), hf_mix(x), atol=1e-6, rtol=1e-5)

    cfg = GptOssConfig(
        hidden_size=DIM,
        intermediate_size=12,
        num_local_experts=6,
        num_experts_per_tok=2,
        swiglu_limit=0.5,
    )
    hf_oss = GptOssMLP(cfg)
    moe = _moe(router_bias=True, expert_bias=True, swiglu_limit=0.5)
    ex = moe.experts
    with torch.no_grad():
        hf_oss.router.weight.copy_(moe.router.weight)
        hf_oss.router.bias.copy_(moe.router.bias)  # type: ignore[arg-type]
        inter = torch.stack([ex.gate_proj, ex.up_proj], dim=2).flatten(1, 2)  # [e, 2i, d]
        hf_oss.experts.gate_up_proj.copy_(inter.transpose(1, 2))
        hf_oss.experts.gate_up_proj_bias.copy_(
            torch.stack([ex.gate_bias, ex.up_bias], 2).flatten(1)
        )  # type: ignore[list-item]
        hf_oss.experts.down_proj.copy_(ex.down_proj.transpose(1, 2))
        hf_oss.experts.down_proj_bias.copy_(ex.down_bias)  # type: ignore[arg-type]
    torch.testing.assert_close(moe(x), hf_oss(x)[0], atol=1e-6, rtol=1e-5)

    cfg = DeepseekV3Config(
        hidden_size=DIM,
        moe_intermediate_size=12,
        n_routed_experts=6,
        num_experts_per_tok=2,
        n_group=3,
        topk_group=2,
        n_shared_experts=1,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
    )
    hf_ds = DeepseekV3MoE(cfg)
    moe = _moe(**VARIANTS["deepseek_v3"])  # type: ignore[arg-type]
    with torch.no_grad():
        hf_ds.gate.weight.copy_(moe.router.weight)
        hf_ds.gate.e_score_correction_bias.copy_(moe.router.e_score_correction_bias)  # type: ignore[arg-type]
        gate_up = torch.cat([moe.experts.gate_proj, moe.experts.up_proj], 1)
        hf_ds.experts.gate_up_proj.copy_(gate_up)
        hf_ds.experts.down_proj.copy_(moe.experts.down_proj)
        shared = moe.shared_experts
        assert shared is not None
        for name in ("gate_proj", "up_proj", "down_proj"):
            getattr(hf_ds.shared_experts, name).weight.copy_(getattr(shared, name).weight)
    torch.testing.assert_close(moe(x), hf_ds(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_k", 9),
        ("num_groups", 4),
        ("scoring", "relu"),
        ("aux_loss_coef", -1.0),
        ("swiglu_limit", 0.0),
        ("activation", "nope"),
    ],
)
def test_bad_configs_name_the_field(field: str, value: object) -> None:
    config = MoeConfig(num_experts=6, top_k=2)
    setattr(config, field, value)
    with pytest.raises(ConfigError) as err:
        config.validate()
    assert err.value.field == f"moe.{field}"
