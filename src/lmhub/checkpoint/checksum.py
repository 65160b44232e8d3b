"""sha256 checks of checkpoint files, remembered per (path, size, mtime) so later loads are fast."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from lmhub.checkpoint.writers import atomic_write_text
from lmhub.errors import AssetCardError, ChecksumMismatchError

_CHUNK = 8 << 20


def cache_dir() -> Path:
    """Return lmhub's cache folder (``$LMHUB_CACHE_DIR``, else ``~/.cache/lmhub``)."""
    return Path(os.environ.get("LMHUB_CACHE_DIR") or "~/.cache/lmhub").expanduser()


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _memo_path() -> Path:
    return cache_dir() / "checksums.json"


def _load_memo() -> dict[str, str]:
    # The memo only saves re-hashing: a corrupt or foreign file is treated as absent.
    try:
        memo = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(memo, dict):
        return {}
    return {k: v for k, v in memo.items() if isinstance(v, str)}


def _memo_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def verify_checksums(checkpoint: Path, expected: str | Mapping[str, str]) -> None:
    """Check the sha256 of the checkpoint file(s) against a card's ``checksum`` field.

    ``expected`` is one hex digest (optionally ``sha256:``-prefixed) for a single-file checkpoint
    (or a folder holding one weight file), or a mapping of file names (relative to the checkpoint
    folder) to digests. A digest that matched once is remembered, keyed by path, size and mtime.

    Raises:
        ChecksumMismatchError: naming the file whose digest differs.
        AssetCardError: if the checksum field does not fit the checkpoint.
    """
    if isinstance(expected, str):
        if checkpoint.is_dir():
            weights = sorted(
                p
                for p in checkpoint.iterdir()
                if p.suffix in (".safetensors", ".bin", ".pt", ".pth")
            )
            if len(weights) != 1:
                raise AssetCardError(
                    f"The checkpoint folder {checkpoint} holds {len(weights)} weight files, but "
                    "its card gives a single checksum. Give a mapping of file name to sha256.",
                    path=checkpoint,
                )
            pairs = [(weights[0], expected)]
        else:
            pairs = [(checkpoint, expected)]
    else:
        base = checkpoint if checkpoint.is_dir() else checkpoint.parent
        pairs = [(base / name, digest) for name, digest in expected.items()]
    memo = _load_memo()
    changed = False
    for path, digest in pairs:
        digest = digest.lower().removeprefix("sha256:")
        if not path.is_file():
            raise AssetCardError(
                f"The card gives a checksum for {path}, but there is no such file.", path=path
            )
        key = _memo_key(path)
        if memo.get(key) == digest:
            continue
        actual = sha256_file(path)
        if actual != digest:
            raise ChecksumMismatchError(path, digest, actual)
        memo[key] = digest
        changed = True
    if changed:
        try:
            _memo_path().parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(_memo_path(), json.dumps(memo, indent=0))
        except OSError:
            pass  # a read-only cache only costs speed on the next load
