"""Shared fixtures. Tests build their own tiny models; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures import train_sentencepiece

# The suite runs under pytest-xdist with one worker per core; tiny models gain nothing from
# intra-op threads, and two workers each spawning two threads thrash the CPU.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep the user's card folder, checksum memo and HF cache out of every test.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LMHUB_CARDS_DIR", str(home / "cards"))
    monkeypatch.setenv("LMHUB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lmhub.assets.store as store

    monkeypatch.setattr(store, "_default_store", None)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sp_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-style SentencePiece model (BPE, byte fallback, 512 pieces) trained on fixtures."""
    return train_sentencepiece(tmp_path_factory.mktemp("sentencepiece"))
