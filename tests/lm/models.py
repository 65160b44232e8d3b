"""Tiny decoders for the LM-type tests, built in-test (nothing is downloaded)."""

from __future__ import annotations

import dataclasses

import torch

import lmhub
from lmhub.models.decoder import DecoderLM


def tiny_llama(*, tie_embeddings: bool = False, seed: int = 0) -> DecoderLM:
    """A 2-layer Llama of width 32 over the byte vocabulary (259 ids)."""
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
    return _sharpened(hub.create_new_model(config))


def tiny_model(family: str, *, seed: int = 0) -> DecoderLM:
    """The family's ``<family>_tiny`` preset, randomly initialised."""
    if family == "llama":
        return tiny_llama(seed=seed)
    hub = lmhub.get_model_hub(family)
    torch.manual_seed(seed)
    return _sharpened(hub.create_new_model(hub.get_arch_config(f"{family}_tiny")))


def _sharpened(model: DecoderLM) -> DecoderLM:
    with torch.no_grad():  # larger weights than the init's, so the loss is far from uniform
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(20.0)
    return model
