"""The BERT family (BERT and RoBERTa): preset sizes, the config.json mapping of both model types,
RoBERTa's positions, and the weight map's two spellings (parity is in tests/oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import lmhub
from lmhub.errors import ConfigError, HfConfigError
from lmhub.models.bert import bert_family
from lmhub.models.bert.model import roberta_positions

# The sizes the models are published under, and the exact count of transformers' masked-LM
# model of the same config (tied head counted once; no pooler, as BertForMaskedLM has none).
PUBLISHED = {
    "bert_base_uncased": (110e6, 109_514_298),
    "bert_large_uncased": (340e6, 335_174_458),
    "roberta_base": (125e6, 124_697_433),
    "roberta_large": (355e6, 355_412_057),
}

# google-bert/bert-base-uncased's and FacebookAI/roberta-base's config.json, as published.
BERT_JSON: dict[str, Any] = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}
ROBERTA_JSON: dict[str, Any] = {
    "architectures": ["RobertaForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 514,
    "model_type": "roberta",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "type_vocab_size": 1,
    "vocab_size": 50265,
}
DROPOUT = {"dropout_p": 0.1, "hidden_dropout_p": 0.1}


def hf() -> Any:
    assert bert_family.hf is not None
    return bert_family.hf


def count(arch: str) -> int:
    hub = lmhub.get_model_hub("bert")
    model = hub.create_new_model(hub.get_arch_config(arch), meta=True)
    return sum(p.numel() for p in model.parameters())


def test_every_published_preset_is_sized() -> None:
    assert set(PUBLISHED) == set(bert_family.archs) - {"bert_tiny"}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_parameter_count_matches_the_published_size(arch: str) -> None:
    nominal, exact = PUBLISHED[arch]
    assert count(arch) == exact
    assert count(arch) == pytest.approx(nominal, rel=0.02)


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_preset_counts_equal_transformers_model_of_the_same_config(arch: str) -> None:
    transformers = pytest.importorskip("transformers")
    fields = hf().config_to_hf(bert_family.archs.get(arch))
    model_type, architecture = fields.pop("model_type"), fields.pop("architectures")[0]
    config = transformers.AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        theirs = getattr(transformers, architecture)(config)
    assert sum(p.numel() for p in theirs.parameters()) == count(arch)


@pytest.mark.parametrize("arch", bert_family.archs.names())
def test_presets_map_to_hf_and_back_exactly(arch: str) -> None:
    config = bert_family.archs.get(arch)
    assert hf().config_from_hf(hf().config_to_hf(config)) == config


@pytest.mark.parametrize(
    ("data", "arch"), [(BERT_JSON, "bert_base_uncased"), (ROBERTA_JSON, "roberta_base")]
)
def test_the_published_config_json_reads_as_the_preset(data: dict[str, Any], arch: str) -> None:
    config = hf().config_from_hf(data)
    assert config == lmhub.apply_overrides(bert_family.archs.get(arch), DROPOUT)


def test_the_model_type_decides_the_export_spelling() -> None:
    bert = hf().config_to_hf(bert_family.archs.get("bert_base_uncased"))
    roberta = hf().config_to_hf(bert_family.archs.get("roberta_base"))
    assert (bert["model_type"], bert["architectures"]) == ("bert", ["BertForMaskedLM"])
    assert (roberta["model_type"], roberta["architectures"]) == ("roberta", ["RobertaForMaskedLM"])
    wm = bert_family.weight_map
    key = "layers.2.attn.q_proj.weight"
    assert wm.bind(bert_family.archs.get("bert_tiny")).to_external(key) == (
        "bert.encoder.layer.2.attention.self.query.weight"
    )
    assert wm.bind(bert_family.archs.get("roberta_base")).to_external(key) == (
        "roberta.encoder.layer.2.attention.self.query.weight"
    )
    assert wm.bind(bert_family.archs.get("roberta_base")).to_external("head.norm.weight") == (
        "lm_head.layer_norm.weight"
    )
    # Unbound, either spelling imports.
    assert wm.to_native("roberta.embeddings.word_embeddings.weight") == "embed.weight"
    assert wm.to_native("bert.embeddings.word_embeddings.weight") == "embed.weight"


@pytest.mark.parametrize(
    ("key", "value"),
    [("position_embedding_type", "relative_key"), ("is_decoder", True)],
)
def test_options_lmhub_lacks_are_refused(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        hf().config_from_hf({**BERT_JSON, key: value})
    assert info.value.field == key


def test_a_bad_value_in_config_json_names_the_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**BERT_JSON, "type_vocab_size": 0}))
    with pytest.raises(HfConfigError, match=r"type_vocab_size") as info:
        lmhub.load_model(tmp_path)
    assert info.value.key == "type_vocab_size"


def test_roberta_needs_its_padding_id_inside_the_position_table() -> None:
    config = lmhub.apply_overrides(bert_family.archs.get("roberta_base"), {"pad_token_id": 600})
    with pytest.raises(ConfigError, match="pad_token_id") as info:
        config.validate()
    assert info.value.field == "pad_token_id"


def test_roberta_positions_count_real_tokens_after_the_padding_id() -> None:
    ids = torch.tensor([[0, 7, 7, 2, 1, 1], [1, 1, 0, 9, 2, 1]])
    assert roberta_positions(ids, pad_token_id=1).tolist() == [
        [2, 3, 4, 5, 1, 1],
        [1, 1, 2, 3, 4, 1],
    ]


def test_a_roberta_model_ignores_left_padding_as_roberta_does() -> None:
    """RoBERTa's positions skip padding ids, so a left-padded row equals the row alone."""
    config = lmhub.apply_overrides(
        bert_family.archs.get("bert_tiny"),
        {"flavour": "roberta", "pad_token_id": 1, "num_layers": 2, "model_dim": 64},
    )
    torch.manual_seed(0)
    model = lmhub.get_model_hub("bert").create_new_model(config).eval()
    seq = torch.tensor([[5, 9, 30, 7]])
    ids = torch.tensor([[1, 1, 5, 9, 30, 7]])
    with torch.no_grad():
        alone = model(seq)
        padded = model(ids, attention_mask=(ids != 1).long())
    assert (padded[:, 2:] - alone).abs().max() <= 1e-5
