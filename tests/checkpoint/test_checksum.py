"""The sha256 check of card checkpoints, its memo file, and card locations (paths, hf://)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lmhub.assets.hf_cache import local_path
from lmhub.checkpoint.checksum import sha256_file, verify_checksums
from lmhub.errors import ChecksumMismatchError, ModelCheckpointError


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "w.safetensors").write_bytes(data)
    assert sha256_file(tmp_path / "w.safetensors") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "memo", [b"[1, 2]", b"\xff\xfe not utf-8", b"[" * 100_000, b'{"k": 3}', b"{"]
)
def test_a_damaged_memo_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memo: bytes
) -> None:
    monkeypatch.setenv("LMHUB_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "checksums.json").write_bytes(memo)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    verify_checksums(weights, f"sha256:{digest}")
    with pytest.raises(ChecksumMismatchError):
        verify_checksums(weights, "0" * 64)
    # The memo was rewritten as a valid mapping, so the next check is remembered.
    assert digest in (tmp_path / "cache" / "checksums.json").read_text()


def test_locations_are_paths_or_cached_hf_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert local_path(str(tmp_path / "w")) == tmp_path / "w"
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--org--name" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--name" / "refs" / "main").write_text("abc123\n")
    assert local_path("hf://org/name") == snapshot
    with pytest.raises(ModelCheckpointError, match="never downloads"):
        local_path("hf://org/other")
