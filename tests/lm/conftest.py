"""A tiny Llama shared by the LM-type tests, built in-test (nothing is downloaded)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import lmhub
from lmhub.models.decoder import DecoderLM


def tiny_llama(*, tie_embeddings: bool = False, seed: int = 0) -> DecoderLM:
    hub = lmhub.get_model_hub("llama")
    config = dataclasses.replace(
        hub.get_arch_config("llama_tiny"),
        model_dim=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        ffn_inner_dim=64,
        tie_embeddings=tie_embeddings,
    )
    torch.manual_seed(seed)
    model = hub.create_new_model(config)
    with torch.no_grad():  # larger weights than the init's, so the loss is far from uniform
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    return model


@pytest.fixture
def model() -> DecoderLM:
    return tiny_llama()
