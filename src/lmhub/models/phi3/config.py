"""Phi-3 / Phi-3.5 / Phi-4-mini configuration and the published architecture presets."""

from dataclasses import dataclass
from typing import Final

from lmhub.models.archs import ArchRegistry
from lmhub.models.llama.config import LlamaConfig
from lmhub.nn.rope import RopeScaling

PHI3_FAMILY: Final = "phi3"


@dataclass(kw_only=True)
class Phi3Config(LlamaConfig):
    """Holds the shape and options of a Phi-3 decoder (Microsoft, 2024; Phi-3.5, Phi-4-mini).

    Phi-3 is a Llama whose checkpoints fuse q/k/v into one ``qkv_proj`` and gate/up into one
    ``gate_up_proj`` (the weight map splits them), with an optional sliding window on every
    layer, ``longrope`` RoPE scaling for the 128K variants and partial rotary (Phi-4-mini). The
    fields are :class:`~lmhub.models.llama.config.LlamaConfig`'s.
    """

    @property
    def q_width(self) -> int:
        """The width of the query part of the fused ``qkv_proj`` (heads x head width)."""
        return self.num_heads * self.resolved_head_dim()

    @property
    def kv_width(self) -> int:
        """The width of the key (and of the value) part of the fused ``qkv_proj``."""
        return self.num_kv_heads * self.resolved_head_dim()


phi3_archs: Final = ArchRegistry(PHI3_FAMILY, Phi3Config)

# The published LongRoPE tables: 48 factors each, one per rotated pair of dimensions (Phi-3 heads
# are 96 wide; Phi-4-mini rotates 96 of 128). Copied from each model's config.json on the Hugging
# Face Hub (``rope_scaling.long_factor`` / ``short_factor``).

# microsoft/Phi-3.5-mini-instruct.
_PHI3_5_LONG: Final = [
    1.0800000429153442, 1.1100000143051147, 1.1399999856948853, 1.340000033378601,
    1.5899999141693115, 1.600000023841858, 1.6200000047683716, 2.620000123977661,
    3.2300000190734863, 3.2300000190734863, 4.789999961853027, 7.400000095367432,
    7.700000286102295, 9.09000015258789, 12.199999809265137, 17.670000076293945,
    24.46000099182129, 28.57000160217285, 30.420001983642578, 30.840002059936523,
    32.590003967285156, 32.93000411987305, 42.320003509521484, 44.96000289916992,
    50.340003967285156, 50.45000457763672, 57.55000305175781, 57.93000411987305,
    58.21000289916992, 60.1400032043457, 62.61000442504883, 62.62000274658203,
    62.71000289916992, 63.1400032043457, 63.1400032043457, 63.77000427246094,
    63.93000411987305, 63.96000289916992, 63.970001220703125, 64.02999877929688,
    64.06999969482422, 64.08000183105469, 64.12000274658203, 64.41000366210938,
    64.4800033569336, 64.51000213623047, 64.52999877929688, 64.83999633789062,
]  # fmt: skip
_PHI3_5_SHORT: Final = [
    1.0, 1.0199999809265137, 1.0299999713897705, 1.0299999713897705,
    1.0499999523162842, 1.0499999523162842, 1.0499999523162842, 1.0499999523162842,
    1.0499999523162842, 1.0699999332427979, 1.0999999046325684, 1.1099998950958252,
    1.1599998474121094, 1.1599998474121094, 1.1699998378753662, 1.2899998426437378,
    1.339999794960022, 1.679999828338623, 1.7899998426437378, 1.8199998140335083,
    1.8499997854232788, 1.8799997568130493, 1.9099997282028198, 1.9399996995925903,
    1.9899996519088745, 2.0199997425079346, 2.0199997425079346, 2.0199997425079346,
    2.0199997425079346, 2.0199997425079346, 2.0199997425079346, 2.0299997329711914,
    2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
    2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
    2.0799996852874756, 2.0899996757507324, 2.189999580383301, 2.2199995517730713,
    2.5899994373321533, 2.729999542236328, 2.749999523162842, 2.8399994373321533,
]  # fmt: skip

# microsoft/Phi-3-mini-128k-instruct (the June 2024 update, the current main revision).
_PHI3_MINI_128K_LONG: Final = [
    1.0700000524520874, 1.1200000047683716, 1.149999976158142, 1.4199999570846558,
    1.5699999332427979, 1.7999999523162842, 2.129999876022339, 2.129999876022339,
    3.009999990463257, 5.910000324249268, 6.950000286102295, 9.070000648498535,
    9.930000305175781, 10.710000038146973, 11.130000114440918, 14.609999656677246,
    15.409998893737793, 19.809999465942383, 37.279998779296875, 38.279998779296875,
    38.599998474121094, 40.12000274658203, 46.20000457763672, 50.940006256103516,
    53.66000747680664, 54.9373893737793, 56.89738845825195, 57.28738784790039,
    59.98738479614258, 60.86738586425781, 60.887386322021484, 61.71739196777344,
    62.91739273071289, 62.957393646240234, 63.41739273071289, 63.8173942565918,
    63.83739471435547, 63.897396087646484, 63.93739700317383, 64.06739807128906,
    64.11434936523438, 64.12435150146484, 64.15435028076172, 64.19435119628906,
    64.24435424804688, 64.57435607910156, 64.69000244140625, 64.76000213623047,
]  # fmt: skip
_PHI3_MINI_128K_SHORT: Final = [
    1.1, 1.1, 1.1, 1.3000000000000003, 1.3500000000000003, 1.3500000000000003,
    1.4000000000000004, 1.5500000000000005, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.000000000000001,
    2.000000000000001, 2.000000000000001, 2.000000000000001, 2.0500000000000007,
    2.0500000000000007, 2.0500000000000007, 2.0500000000000007, 2.0500000000000007,
    2.0500000000000007, 2.1000000000000005, 2.1000000000000005, 2.1500000000000004,
    2.25, 2.25, 2.25, 2.25, 2.25, 2.3999999999999995, 2.4499999999999993,
    2.499999999999999, 2.6999999999999984, 2.6999999999999984, 2.7499999999999982,
    2.799999999999998, 2.8999999999999977, 3.049999999999997,
]  # fmt: skip

# microsoft/Phi-4-mini-instruct: no change within the original 4K positions.
_PHI4_MINI_LONG: Final = [
    1.0, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817,
    2.187582649, 2.446418898, 2.735880826, 3.059592084, 3.421605075, 3.826451687,
    4.279200023, 4.785517845, 5.351743533, 5.984965424, 6.693110555, 7.485043894,
    8.370679318, 9.36110372, 10.4687158, 11.70738129, 13.09260651, 14.64173252,
    16.37415215, 18.31155283, 20.47818807, 22.90118105, 25.61086418, 28.64115884,
    32.03, 32.1, 32.13, 32.23, 32.6, 32.61, 32.64, 32.66, 32.7, 32.71, 32.93, 32.97,
    33.28, 33.49, 33.5, 44.16, 47.77,
]  # fmt: skip
_PHI4_MINI_SHORT: Final = [1.0] * 48


def _longrope(max_seq_len: int, short: list[float], long: list[float]) -> RopeScaling:
    # transformers derives the factor (and so the attention factor) from the two lengths.
    return RopeScaling(
        kind="longrope",
        factor=max_seq_len / 4096,
        original_max_seq_len=4096,
        short_factor=list(short),
        long_factor=list(long),
    )


@phi3_archs.register("phi3_tiny")
def phi3_tiny() -> Phi3Config:
    """A ~1.6M-parameter Phi-3 for tests and demos (byte-level vocabulary, GQA, a window of 8)."""
    return Phi3Config(
        model_dim=256,
        num_layers=2,
        num_heads=8,
        num_kv_heads=4,
        ffn_inner_dim=688,
        vocab_size=259,
        max_seq_len=512,
        sliding_window=8,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )


@phi3_archs.register("phi3_mini_4k")
def phi3_mini_4k() -> Phi3Config:
    """Phi-3-mini 4K (3.8B; a 2047-position sliding window)."""
    return Phi3Config(
        model_dim=3072,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        ffn_inner_dim=8192,
        vocab_size=32064,
        max_seq_len=4096,
        sliding_window=2047,
        bos_token_id=1,
        eos_token_id=32000,
        pad_token_id=32000,
    )


@phi3_archs.register("phi3_mini_128k")
def phi3_mini_128k() -> Phi3Config:
    """Phi-3-mini 128K (3.8B; longrope from 4K to 131072 positions, its own factor tables)."""
    config = phi3_mini_4k()
    config.max_seq_len = 131_072
    config.sliding_window = 262_144
    config.rope_scaling = _longrope(131_072, _PHI3_MINI_128K_SHORT, _PHI3_MINI_128K_LONG)
    return config


@phi3_archs.register("phi3_medium_4k")
def phi3_medium_4k() -> Phi3Config:
    """Phi-3-medium 4K (14B; GQA with 10 key/value heads)."""
    config = phi3_mini_4k()
    config.model_dim, config.num_layers, config.ffn_inner_dim = 5120, 40, 17920
    config.num_heads, config.num_kv_heads = 40, 10
    return config


@phi3_archs.register("phi3_5_mini")
def phi3_5_mini() -> Phi3Config:
    """Phi-3.5-mini (3.8B; Phi-3-mini 128K's shape with retrained longrope tables)."""
    config = phi3_mini_128k()
    config.rope_scaling = _longrope(131_072, _PHI3_5_SHORT, _PHI3_5_LONG)
    return config


@phi3_archs.register("phi4_mini")
def phi4_mini() -> Phi3Config:
    """Phi-4-mini (3.8B; 200K vocabulary, tied embeddings, GQA, rotary on 3/4 of each head,
    its own longrope tables)."""
    config = phi3_mini_128k()
    config.rope_scaling = _longrope(131_072, _PHI4_MINI_SHORT, _PHI4_MINI_LONG)
    config.num_heads, config.num_kv_heads = 24, 8
    config.vocab_size = 200_064
    config.tie_embeddings = True
    config.partial_rotary_factor = 0.75
    config.bos_token_id = config.eos_token_id = config.pad_token_id = 199_999
    return config
