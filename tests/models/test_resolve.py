"""MODEL arguments: checkpoint directories, cards (with or without local weights), presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.errors import ModelCheckpointError, ModelNotKnownError
from lmhub.models.resolve import instantiate, load_source_tokenizer, resolve_model_source
from tests.oracle.hf_models import save_tiny_hf_llama


def test_checkpoint_directory(tmp_path: Path) -> None:
    hf = save_tiny_hf_llama(tmp_path)
    source = resolve_model_source(str(tmp_path))
    assert source.kind == "checkpoint" and source.checkpoint == tmp_path
    assert source.tokenizer is None and "random" not in source.label
    model = instantiate(source)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max() <= 1e-5


def test_cards_with_and_without_local_weights(tmp_path: Path) -> None:
    save_tiny_hf_llama(tmp_path / "w")
    shrink = (
        "model_config: {vocab_size: 160, model_dim: 64, ffn_inner_dim: 96, num_layers: 2, "
        "num_heads: 4, num_kv_heads: 2, max_seq_len: 64}\n"
    )
    (tmp_path / "c.yaml").write_text(
        f"name: local\nmodel_family: llama\nmodel_arch: llama_tiny\n{shrink}checkpoint: ./w\n"
        "---\nname: random_only\nmodel_family: llama\nmodel_arch: llama_tiny\n"
        "model_config: {num_layers: 1}\n"
        "---\nname: gone\nmodel_family: llama\nmodel_arch: llama_tiny\ncheckpoint: ./missing\n"
    )
    lmhub.register_cards(tmp_path / "c.yaml")
    local = resolve_model_source("local")
    assert local.kind == "card" and local.checkpoint == tmp_path / "w"
    assert instantiate(local).config.vocab_size == 160
    random_only = resolve_model_source("random_only")
    assert random_only.checkpoint is None and "random weights" in random_only.label
    assert len(instantiate(random_only).layers) == 1
    with pytest.raises(ModelCheckpointError, match="missing"):
        resolve_model_source("gone")


def test_preset_named_like_a_card_without_local_weights_falls_back_to_random() -> None:
    # The shipped llama3_2_1b card points at the HF cache, which is empty in tests.
    source = resolve_model_source("llama3_2_1b")
    assert source.kind == "arch" and source.checkpoint is None
    assert source.config.model_dim == 2048


def test_unknown_names_and_tokenizers(tmp_path: Path) -> None:
    with pytest.raises(ModelNotKnownError, match="Did you mean 'llama_tiny'"):
        resolve_model_source("llama_tiyn")
    assert load_source_tokenizer(resolve_model_source("llama_tiny")) is None
