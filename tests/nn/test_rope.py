"""RoPE must match transformers' Llama rotary embedding bit for bit, for every scaling kind."""

import math
import typing

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

from lmhub.errors import ConfigError
from lmhub.models.llama.interop import rope_from_hf, rope_to_hf
from lmhub.nn.rope import RopeScaling, RotaryEmbedding, apply_rotary, rope_inv_freq

EXACT = {"rtol": 0.0, "atol": 0.0}


class Case(typing.NamedTuple):
    """One RoPE setup, in lmhub's terms and in transformers' terms."""

    head_dim: int
    theta: float
    max_seq_len: int  # HF max_position_embeddings
    scaling: RopeScaling | None
    hf_params: dict  # HF rope_parameters without rope_theta


CASES = {
    "default": Case(64, 10_000.0, 2048, None, {"rope_type": "default"}),
    "linear": Case(
        64, 10_000.0, 4096, RopeScaling(kind="linear", factor=4.0),
        {"rope_type": "linear", "factor": 4.0},
    ),
    "dynamic": Case(
        64, 10_000.0, 2048, RopeScaling(kind="dynamic", factor=2.5),
        {"rope_type": "dynamic", "factor": 2.5},
    ),
    "llama3-8": Case(
        128, 500_000.0, 131_072,
        RopeScaling(kind="llama3", factor=8.0, original_max_seq_len=8192),
        {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    ),
    "llama3-32": Case(
        64, 500_000.0, 131_072,
        RopeScaling(kind="llama3", factor=32.0, original_max_seq_len=8192),
        {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    ),
    "llama3-no-original": Case(
        64, 500_000.0, 8192, RopeScaling(kind="llama3", factor=8.0, low_freq_factor=2.0),
        {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 2.0, "high_freq_factor": 4.0},
    ),
    "yarn": Case(
        128, 1_000_000.0, 131_072,
        RopeScaling(kind="yarn", factor=4.0, original_max_seq_len=32_768),
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32_768},
    ),
    "yarn-attention-factor": Case(
        64, 10_000.0, 16_384,
        RopeScaling(kind="yarn", factor=4.0, original_max_seq_len=4096, attention_factor=0.8),
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096,
         "attention_factor": 0.8},
    ),
    "yarn-mscale": Case(
        64, 10_000.0, 163_840,
        RopeScaling(kind="yarn", factor=40.0, original_max_seq_len=4096, mscale=1.0,
                    mscale_all_dim=0.8, beta_fast=16.0, beta_slow=2.0),
        {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
         "mscale": 1.0, "mscale_all_dim": 0.8, "beta_fast": 16.0, "beta_slow": 2.0},
    ),
    "yarn-no-truncate": Case(
        64, 150_000.0, 131_072,
        RopeScaling(kind="yarn", factor=32.0, original_max_seq_len=4096, truncate=False),
        {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
         "truncate": False},
    ),
    "yarn-no-original": Case(
        64, 10_000.0, 4096, RopeScaling(kind="yarn", factor=2.0),
        {"rope_type": "yarn", "factor": 2.0},
    ),
    "longrope": Case(
        8, 10_000.0, 64,
        RopeScaling(kind="longrope", factor=4.0, original_max_seq_len=16,
                    short_factor=[1.0, 1.5, 2.0, 3.0], long_factor=[2.0, 4.0, 8.0, 16.0]),
        {"rope_type": "longrope", "factor": 4.0, "original_max_position_embeddings": 16,
         "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 4.0, 8.0, 16.0]},
    ),
    "longrope-attention-factor": Case(
        8, 500.0, 64,
        RopeScaling(kind="longrope", factor=2.0, original_max_seq_len=32, attention_factor=1.3,
                    short_factor=[1.0, 1.1, 1.2, 1.3], long_factor=[3.0, 3.0, 5.0, 9.0]),
        {"rope_type": "longrope", "factor": 2.0, "original_max_position_embeddings": 32,
         "attention_factor": 1.3, "short_factor": [1.0, 1.1, 1.2, 1.3],
         "long_factor": [3.0, 3.0, 5.0, 9.0]},
    ),
}  # fmt: skip


def hf_config(case: Case) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=16,
        hidden_size=2 * case.head_dim,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        head_dim=case.head_dim,
        max_position_embeddings=case.max_seq_len,
        rope_parameters={**case.hf_params, "rope_theta": case.theta},
    )


def hf_inv_freq(
    case: Case, seq_len: int | torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    config = hf_config(case)
    if case.hf_params["rope_type"] == "default":
        return LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[case.hf_params["rope_type"]](config, seq_len=seq_len)


def our_inv_freq(
    case: Case, seq_len: int | torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    return rope_inv_freq(
        case.head_dim,
        theta=case.theta,
        scaling=case.scaling,
        max_seq_len=case.max_seq_len,
        seq_len=seq_len,
    )


def rope_module(case: Case) -> RotaryEmbedding:
    return RotaryEmbedding(
        case.head_dim, theta=case.theta, max_seq_len=case.max_seq_len, scaling=case.scaling
    )


@pytest.mark.parametrize("name", CASES)
def test_inv_freq_matches_transformers(name: str) -> None:
    inv_freq, scale = our_inv_freq(CASES[name])
    hf_inv, hf_scale = hf_inv_freq(CASES[name])
    assert inv_freq.dtype == torch.float32 and inv_freq.shape == (CASES[name].head_dim // 2,)
    torch.testing.assert_close(inv_freq, hf_inv, **EXACT)
    assert scale == hf_scale


@pytest.mark.parametrize("name", ["longrope", "longrope-attention-factor"])
@pytest.mark.parametrize("past", [0, 1, 30])
def test_longrope_long_factors_past_the_original_length_match_transformers(
    name: str, past: int
) -> None:
    case = CASES[name]
    assert case.scaling is not None and case.scaling.original_max_seq_len is not None
    seq_len = case.scaling.original_max_seq_len + past
    inv_freq, scale = our_inv_freq(case, torch.tensor(seq_len))
    hf_inv, hf_scale = hf_inv_freq(case, seq_len)
    torch.testing.assert_close(inv_freq, hf_inv, **EXACT)
    assert scale == hf_scale
    short, _ = our_inv_freq(case)
    assert torch.equal(inv_freq, short) == (past == 0)


def test_longrope_module_switches_tables_with_the_longest_position() -> None:
    case = CASES["longrope"]
    rope = rope_module(case)
    theirs = LlamaRotaryEmbedding(hf_config(case))
    x = torch.zeros(1, dtype=torch.float32)
    for n in (5, 16, 17, 40, 3):  # short, the boundary, long, long, short again
        positions = torch.arange(n)[None]
        cos, sin = rope(positions, torch.float32)
        hf_cos, hf_sin = theirs(x, positions)
        torch.testing.assert_close(cos, hf_cos, **EXACT)
        torch.testing.assert_close(sin, hf_sin, **EXACT)


def test_longrope_needs_both_tables_of_the_right_length() -> None:
    with pytest.raises(ConfigError) as info:
        RopeScaling(kind="longrope", factor=2.0, short_factor=[1.0]).validate()
    assert info.value.field == "long_factor"
    scaling = RopeScaling(kind="longrope", factor=2.0, short_factor=[1.0], long_factor=[1.0])
    with pytest.raises(ConfigError, match="needs 4 factors") as info:
        rope_inv_freq(8, theta=1e4, scaling=scaling, max_seq_len=64)
    assert info.value.field == "short_factor"


@pytest.mark.parametrize("seq_len", [100, 2048, 2049, 5000, 20_000])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_dynamic_inv_freq_matches_transformers(seq_len: int, as_tensor: bool) -> None:
    case = CASES["dynamic"]
    length = torch.tensor(seq_len) if as_tensor else seq_len
    inv_freq, scale = our_inv_freq(case, length)
    hf_inv, hf_scale = hf_inv_freq(case, length)
    torch.testing.assert_close(inv_freq, hf_inv, **EXACT)
    assert scale == hf_scale == 1.0
    unscaled, _ = our_inv_freq(case)
    assert torch.equal(inv_freq, unscaled) == (seq_len <= case.max_seq_len)


def test_yarn_attention_scaling_values() -> None:
    # The paper's 0.1 ln(s) + 1, an explicit override, and DeepSeek's ratio of two mscales.
    assert our_inv_freq(CASES["yarn"])[1] == pytest.approx(0.1 * math.log(4.0) + 1)
    assert our_inv_freq(CASES["yarn-attention-factor"])[1] == 0.8
    ratio = (0.1 * math.log(40.0) + 1) / (0.08 * math.log(40.0) + 1)
    assert our_inv_freq(CASES["yarn-mscale"])[1] == pytest.approx(ratio)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_matches_transformers(name: str, dtype: torch.dtype) -> None:
    case = CASES[name]
    positions = torch.stack([torch.arange(300), torch.arange(300) + 1000])
    cos, sin = rope_module(case)(positions, dtype)
    x = torch.empty(0, dtype=dtype)
    hf_cos, hf_sin = LlamaRotaryEmbedding(hf_config(case))(x, positions)
    assert cos.shape == (2, 300, case.head_dim) and cos.dtype == dtype
    torch.testing.assert_close(cos, hf_cos, **EXACT)
    torch.testing.assert_close(sin, hf_sin, **EXACT)


def test_dynamic_forward_follows_transformers_across_lengths() -> None:
    case = CASES["dynamic"]  # original length 2048
    ours, theirs = rope_module(case), LlamaRotaryEmbedding(hf_config(case))
    unscaled = ours.inv_freq.clone()
    # Grow past the original, shrink (still past it), return to it, drop below it, grow again.
    for length in [100, 3000, 5000, 4000, 2048, 1000, 2049, 6000, 10]:
        positions = torch.arange(length)[None]
        cos, sin = ours(positions, torch.float32)
        hf_cos, hf_sin = theirs(torch.empty(0), positions)
        torch.testing.assert_close(cos, hf_cos, **EXACT)
        torch.testing.assert_close(sin, hf_sin, **EXACT)
        torch.testing.assert_close(ours.inv_freq, theirs.inv_freq, **EXACT)
    assert torch.equal(ours.inv_freq, unscaled)  # the last call was short again


def test_forward_ignores_autocast() -> None:
    rope = rope_module(CASES["llama3-8"])
    positions = torch.arange(64)[None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cos, sin = rope(positions, torch.float32)
    torch.testing.assert_close((cos, sin), rope(positions, torch.float32), **EXACT)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_rotary_matches_transformers(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 8, 16, 64, generator=generator).to(dtype)
    k = torch.randn(2, 2, 16, 64, generator=generator).to(dtype)
    positions = torch.arange(16).expand(2, 16)
    cos, sin = rope_module(CASES["yarn-mscale"])(positions, dtype)
    q_rot, k_rot = apply_rotary(q, k, cos, sin)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(q_rot, hf_q, **EXACT)
    torch.testing.assert_close(k_rot, hf_k, **EXACT)


def test_rotation_keeps_norms_and_position_zero() -> None:
    q = torch.randn(1, 2, 8, 32, dtype=torch.float64)
    cos, sin = RotaryEmbedding(32, theta=10_000.0, max_seq_len=64)(
        torch.arange(8)[None], torch.float64
    )
    q_rot, _ = apply_rotary(q, q, cos, sin)
    torch.testing.assert_close(q_rot.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(q_rot[:, :, 0], q[:, :, 0])


@pytest.mark.parametrize("name", ["default", "dynamic", "llama3-8", "yarn-mscale"])
def test_meta_build_then_reset(name: str) -> None:
    case = CASES[name]
    reference = rope_module(case)
    with torch.device("meta"):
        rope = rope_module(case)
    assert rope.inv_freq.is_meta
    rope.reset_non_persistent_buffers(torch.device("cpu"))
    assert rope.inv_freq.device.type == "cpu"
    torch.testing.assert_close(rope.inv_freq, reference.inv_freq, **EXACT)
    assert rope.attention_scaling == reference.attention_scaling

    # The usual path: materialise with to_empty, then refill the buffer where it now lives.
    with torch.device("meta"):
        rope = rope_module(case)
    rope.to_empty(device="cpu")
    rope.reset_non_persistent_buffers()
    torch.testing.assert_close(rope.inv_freq, reference.inv_freq, **EXACT)


def test_inv_freq_is_not_in_state_dict() -> None:
    rope = rope_module(CASES["yarn"])
    assert "inv_freq" in dict(rope.named_buffers())
    assert rope.state_dict() == {}


def test_rope_scaling_resolves_type_hints() -> None:
    hints = typing.get_type_hints(RopeScaling)
    assert hints["original_max_seq_len"] == int | None
    kinds = ("default", "linear", "dynamic", "llama3", "yarn", "longrope", "proportional")
    assert typing.get_args(hints["kind"]) == kinds


def test_proportional_rope_matches_transformers_and_leaves_the_rest_unrotated() -> None:
    """Gemma 4's global-layer RoPE: the first quarter of the pairs rotate with exponents over
    the whole head, the others have frequency zero (cos 1, sin 0)."""
    scaling = RopeScaling(kind="proportional", partial_rotary_factor=0.25)
    inv_freq, scale = rope_inv_freq(512, theta=1e6, scaling=scaling, max_seq_len=16)
    assert scale == 1.0 and inv_freq.shape == (256,)
    assert torch.equal(inv_freq[64:], torch.zeros(192))
    want = 1.0 / (1e6 ** (torch.arange(0, 128, 2, dtype=torch.int64).float() / 512))
    assert torch.equal(inv_freq[:64], want)
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = transformers.Gemma4TextConfig(head_dim=256, global_head_dim=512)
    hf_freq, _ = ROPE_INIT_FUNCTIONS["proportional"](config, "cpu", layer_type="full_attention")
    assert torch.equal(inv_freq, hf_freq)
    rope = RotaryEmbedding(512, theta=1e6, max_seq_len=16, scaling=scaling)
    cos, sin = rope(torch.arange(5)[None], torch.float32)
    q, k = torch.randn(1, 2, 5, 512), torch.randn(1, 1, 5, 512)
    rq, rk = apply_rotary(q, k, cos, sin)
    unrotated = torch.cat([torch.arange(64, 256), torch.arange(320, 512)])
    assert torch.equal(rq[..., unrotated], q[..., unrotated])
    assert torch.equal(rk[..., unrotated], k[..., unrotated])


def test_proportional_rope_needs_a_fraction() -> None:
    with pytest.raises(ConfigError) as info:
        RopeScaling(kind="proportional", partial_rotary_factor=0.0).validate()
    assert info.value.field == "partial_rotary_factor"


@pytest.mark.parametrize(
    ("scaling", "field"),
    [
        (RopeScaling(kind="linear", factor=0.5), "factor"),
        (RopeScaling(kind="yarn", factor=float("nan")), "factor"),
        (RopeScaling(kind="llama3", factor=8.0, low_freq_factor=4.0), "high_freq_factor"),
        (RopeScaling(kind="yarn", factor=2.0, beta_slow=0.0), "beta_slow"),
        (RopeScaling(kind="dynamic", factor=2.0, original_max_seq_len=0), "original_max_seq_len"),
        (RopeScaling(kind="ntk"), "kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_scaling_is_a_config_error(scaling: RopeScaling, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        RotaryEmbedding(64, theta=10_000.0, max_seq_len=2048, scaling=scaling)
    assert info.value.field == field


def test_default_kind_ignores_factor() -> None:
    scaled = rope_inv_freq(64, theta=1e4, scaling=RopeScaling(factor=0.5), max_seq_len=16)
    plain = rope_inv_freq(64, theta=1e4, scaling=None, max_seq_len=16)
    torch.testing.assert_close(scaled[0], plain[0], rtol=0, atol=0)
    assert scaled[1] == plain[1] == 1.0


@pytest.mark.parametrize("head_dim", [0, 63])
def test_odd_head_dim_is_a_config_error(head_dim: int) -> None:
    with pytest.raises(ConfigError, match="even") as info:
        RotaryEmbedding(head_dim, theta=10_000.0, max_seq_len=2048)
    assert info.value.field == "head_dim"


# --- Hugging Face config.json spellings (models/llama/interop.py; nn/ knows no HF keys) ---


def test_from_hf_transformers4_spelling() -> None:
    theta, scaling = rope_from_hf(
        {
            "max_position_embeddings": 131_072,
            "rope_theta": 500_000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
        }
    )
    assert theta == 500_000.0
    assert scaling == CASES["llama3-8"].scaling


def test_from_hf_legacy_type_key() -> None:
    theta, scaling = rope_from_hf(
        {"rope_theta": 10_000, "rope_scaling": {"type": "dynamic", "factor": 2}}
    )
    assert (theta, scaling) == (10_000.0, RopeScaling(kind="dynamic", factor=2.0))


def test_from_hf_transformers5_spelling() -> None:
    theta, scaling = rope_from_hf(
        {
            "max_position_embeddings": 131_072,
            "rope_parameters": {
                "rope_type": "yarn",
                "rope_theta": 1_000_000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 32_768,
            },
        }
    )
    assert (theta, scaling) == (1_000_000.0, CASES["yarn"].scaling)


@pytest.mark.parametrize(
    "hf",
    [
        {},
        {"rope_theta": 10_000.0},
        {"rope_theta": 10_000.0, "rope_scaling": None},
        {"rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0}},
        {"rope_parameters": {"rope_theta": 10_000.0}},
    ],
)
def test_from_hf_plain_rope_is_none(hf: dict) -> None:
    assert rope_from_hf(hf) == (10_000.0, None)


def test_from_hf_yarn_factor_from_lengths_and_top_level_original() -> None:
    # DeepSeek-V3 leaves out factor; Phi-3 puts original_max_position_embeddings at top level.
    _, scaling = rope_from_hf(
        {
            "max_position_embeddings": 16_384,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {"rope_type": "yarn", "original_max_position_embeddings": 1024},
        }
    )
    assert scaling is not None
    assert (scaling.factor, scaling.original_max_seq_len) == (4.0, 4096)


@pytest.mark.parametrize("kind", ["mrope", "su"])
def test_from_hf_unknown_kind_is_a_config_error(kind: str) -> None:
    with pytest.raises(ConfigError, match=kind) as info:
        rope_from_hf({"rope_scaling": {"rope_type": kind, "factor": 2.0}})
    assert "llama3" in str(info.value) and "yarn" in str(info.value)
    assert (info.value.field, info.value.value) == ("rope_scaling.rope_type", kind)


@pytest.mark.parametrize(
    "hf",
    [
        {"rope_scaling": {"rope_type": "linear"}},
        {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5}},
        {"rope_parameters": {"full_attention": {"rope_type": "default"}}},
    ],
)
def test_from_hf_unsupported_configs_are_config_errors(hf: dict) -> None:
    with pytest.raises(ConfigError):
        rope_from_hf(hf)


@pytest.mark.parametrize("name", CASES)
def test_to_hf_from_hf_round_trip(name: str) -> None:
    case = CASES[name]
    hf = rope_to_hf(case.theta, case.scaling)
    assert set(hf) == {"rope_theta", "rope_scaling", "rope_parameters"}
    assert rope_from_hf(hf) == (case.theta, case.scaling)
    # Both spellings alone carry the same information.
    assert rope_from_hf({"rope_parameters": hf["rope_parameters"]}) == (
        case.theta,
        case.scaling,
    )


@pytest.mark.parametrize("name", CASES)
def test_to_hf_loads_in_transformers(name: str) -> None:
    case = CASES[name]
    hf = rope_to_hf(case.theta, case.scaling, max_seq_len=case.max_seq_len)
    config = LlamaConfig.from_dict(
        {
            **hf_config(case).to_dict(),
            "rope_parameters": None,
            **hf,
        }
    )
    theirs = LlamaRotaryEmbedding(config)
    inv_freq, scale = our_inv_freq(case)
    torch.testing.assert_close(theirs.inv_freq, inv_freq, **EXACT)
    assert theirs.attention_scaling == scale


def test_to_hf_emits_only_meaningful_fields() -> None:
    hf = rope_to_hf(500_000.0, CASES["llama3-8"].scaling)
    assert hf["rope_scaling"] == {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    assert hf["rope_parameters"] == {**hf["rope_scaling"], "rope_theta": 500_000.0}
    assert rope_to_hf(1e4, None)["rope_scaling"] is None
    linear = rope_to_hf(1e4, RopeScaling(kind="linear", factor=2.0, beta_fast=3.0))
    assert linear["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    yarn = rope_to_hf(1e4, RopeScaling(kind="yarn", factor=2.0), max_seq_len=4096)
    assert "truncate" not in yarn["rope_scaling"] and "mscale" not in yarn["rope_scaling"]
    assert yarn["rope_scaling"]["original_max_position_embeddings"] == 4096


def test_to_hf_dynamic_with_separate_original_length_is_a_config_error() -> None:
    scaling = RopeScaling(kind="dynamic", factor=2.0, original_max_seq_len=2048)
    with pytest.raises(ConfigError, match="max_position_embeddings"):
        rope_to_hf(1e4, scaling, max_seq_len=8192)
    assert rope_to_hf(1e4, scaling, max_seq_len=2048)["rope_scaling"] == {
        "rope_type": "dynamic",
        "factor": 2.0,
    }
