"""The encoder-decoder presets: parameter counts equal the published ones, and the shapes equal
what the published ``config.json`` files map to (copied here, so no network is needed)."""

from __future__ import annotations

import dataclasses

import pytest

import lmhub
from lmhub.errors import ConfigError
from lmhub.models.t5.interop import t5_config_from_hf, t5_config_to_hf
from lmhub.models.transformer.interop import m2m100_config_from_hf

# transformers' num_parameters() of the Hugging Face checkpoints (shared embedding counted once).
PUBLISHED = {
    "t5_v1_1_small": 76_961_152,
    "t5_v1_1_base": 247_577_856,
    "t5_v1_1_large": 783_150_080,
    "t5_v1_1_xl": 2_849_757_184,
    "flan_t5_small": 76_961_152,
    "flan_t5_base": 247_577_856,
    "flan_t5_large": 783_150_080,
    "flan_t5_xl": 2_849_757_184,
    "nllb_dense_600m": 615_073_792,  # facebook/nllb-200-distilled-600M
    "nllb_dense_1b": 1_370_638_336,  # facebook/nllb-200-1.3B
}


@pytest.mark.parametrize(("arch", "count"), PUBLISHED.items())
def test_preset_sizes_equal_the_published_counts(arch: str, count: int) -> None:
    family = "t5" if "t5" in arch else "transformer"
    hub = lmhub.get_model_hub(family)
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    assert sum(p.numel() for p in model.parameters()) == count


FLAN_T5_SMALL = {
    "architectures": ["T5ForConditionalGeneration"], "d_ff": 1024, "d_kv": 64, "d_model": 512,
    "decoder_start_token_id": 0, "dense_act_fn": "gelu_new", "dropout_rate": 0.1,
    "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
    "is_encoder_decoder": True, "is_gated_act": True, "layer_norm_epsilon": 1e-06,
    "model_type": "t5", "n_positions": 512, "num_decoder_layers": 8, "num_heads": 6,
    "num_layers": 8, "output_past": True, "pad_token_id": 0,
    "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
    "tie_word_embeddings": False, "vocab_size": 32128,
}  # fmt: skip

NLLB_600M = {
    "activation_dropout": 0.0, "activation_function": "relu", "architectures":
    ["M2M100ForConditionalGeneration"], "attention_dropout": 0.1, "bos_token_id": 0,
    "d_model": 1024, "decoder_attention_heads": 16, "decoder_ffn_dim": 4096,
    "decoder_layerdrop": 0, "decoder_layers": 12, "decoder_start_token_id": 2, "dropout": 0.1,
    "encoder_attention_heads": 16, "encoder_ffn_dim": 4096, "encoder_layerdrop": 0,
    "encoder_layers": 12, "eos_token_id": 2, "init_std": 0.02, "is_encoder_decoder": True,
    "max_position_embeddings": 1024, "model_type": "m2m_100", "num_hidden_layers": 12,
    "pad_token_id": 1, "scale_embedding": True, "vocab_size": 256206,
}  # fmt: skip


def shape(config: object, ignore: set[str]) -> dict[str, object]:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ignore}  # type: ignore[call-overload]


def test_flan_t5_config_json_maps_to_the_preset() -> None:
    mapped = t5_config_from_hf(FLAN_T5_SMALL)
    preset = lmhub.get_model_hub("t5").get_arch_config("flan_t5_small")
    assert mapped.dropout_p == 0.1  # pre-training dropout; the preset fine-tunes without
    assert shape(mapped, {"dropout_p"}) == shape(preset, {"dropout_p"})
    back = t5_config_to_hf(mapped)
    for key in ("d_model", "d_kv", "d_ff", "num_layers", "num_heads", "feed_forward_proj"):
        assert back[key] == FLAN_T5_SMALL[key], key
    assert back["scale_decoder_outputs"] is False


def test_t5_refuses_the_original_relu_feed_forward() -> None:
    with pytest.raises(ConfigError, match="feed_forward_proj") as info:
        t5_config_from_hf({**FLAN_T5_SMALL, "feed_forward_proj": "relu"})
    assert info.value.field == "feed_forward_proj"


def test_nllb_config_json_maps_to_the_preset_shape() -> None:
    mapped = m2m100_config_from_hf(NLLB_600M)
    preset = lmhub.get_model_hub("transformer").get_arch_config("nllb_dense_600m")
    # The token ids differ: fairseq2 puts padding first, the HF vocabulary second.
    ids = {"pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"}
    assert shape(mapped, ids) == shape(preset, ids)
    assert mapped.pos_offset == mapped.pad_token_id + 1 == 2


def test_m2m100_refuses_different_ffn_widths() -> None:
    with pytest.raises(ConfigError, match="decoder_ffn_dim") as info:
        m2m100_config_from_hf({**NLLB_600M, "decoder_ffn_dim": 2048})
    assert info.value.field == "decoder_ffn_dim"


def test_fairseq2_base_and_big_hyper_parameters() -> None:
    hub = lmhub.get_model_hub("transformer")
    base, big = hub.get_arch_config("transformer_base"), hub.get_arch_config("transformer_big")
    assert (base.model_dim, base.num_layers, base.num_heads, base.ffn_inner_dim) == (
        512,
        6,
        8,
        2048,
    )
    assert (base.norm_order, base.dropout_p, base.max_seq_len) == ("post", 0.1, 1024)
    assert (big.model_dim, big.num_heads, big.ffn_inner_dim, big.dropout_p) == (1024, 16, 4096, 0.3)
    assert big.num_decoder_heads == 16 and big.norm_order == "post"
