"""Sharded (DCP) checkpoints in one process: a round trip, an atomic overwrite, a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmhub import get_model_hub
from lmhub.errors import ModelCheckpointError
from lmhub.parallel.dcp import load_sharded, save_sharded


def test_dcp_round_trip_in_one_process(tmp_path: Path) -> None:
    hub = get_model_hub("llama")
    config = hub.get_model_config("llama_tiny", {"num_layers": 1})
    torch.manual_seed(0)
    saved = hub.create_new_model(config, device="cpu")
    save_sharded(tmp_path / "ckpt", hub.create_new_model(config, device="cpu"))
    save_sharded(tmp_path / "ckpt", saved)  # replaces the first one whole
    loaded = hub.create_new_model(config, device="cpu")
    load_sharded(tmp_path / "ckpt", loaded)
    for (name, p), q in zip(saved.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(ModelCheckpointError, match="not a distributed checkpoint"):
        load_sharded(tmp_path, loaded)
