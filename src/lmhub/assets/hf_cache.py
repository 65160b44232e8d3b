"""Resolve ``hf://org/name`` to a snapshot in the local Hugging Face cache, never downloading.

:func:`local_path` is the one place a card's location (a checkpoint or a tokenizer: a path
or an ``hf://`` URI) becomes a local path.
"""

from __future__ import annotations

import os
from pathlib import Path

from lmhub.errors import ModelCheckpointError


def hf_cache_dir() -> Path:
    """Return the Hugging Face hub cache folder (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def resolve_hf_uri(uri: str) -> Path:
    """Return the cached snapshot folder for ``hf://org/name[@revision]``.

    Raises:
        ModelCheckpointError: if the repository is not in the local cache, saying how to get it.

    Example:
        >>> resolve_hf_uri("hf://meta-llama/Llama-3.2-1B")
        PosixPath('/root/.cache/huggingface/hub/models--meta-llama--Llama-3.2-1B/snapshots/4e20de36...')
    """
    repo, _, revision = uri.removeprefix("hf://").partition("@")
    revision = revision or "main"
    repo_dir = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / revision
    candidate: Path | None = None
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
    elif (snapshots / revision).is_dir():
        candidate = snapshots / revision
    elif snapshots.is_dir() and revision == "main":
        found = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
        candidate = found[-1] if found else None
    if candidate is None or not candidate.is_dir():
        raise ModelCheckpointError(
            f"The Hugging Face repository '{repo}' (revision '{revision}') is not in the local "
            f"cache at {hf_cache_dir()}, and lmhub never downloads at run time. Fetch it first, "
            f"e.g. `huggingface-cli download {repo}`, or point the card at a local directory.",
            path=repo_dir,
        )
    return candidate


def is_hf_uri(location: str) -> bool:
    """Whether ``location`` is an ``hf://org/name[@revision]`` URI rather than a path."""
    return location.startswith("hf://")


def local_path(location: str) -> Path:
    """Return the local path of a card location: an ``hf://`` URI from the local Hugging Face
    cache (see :func:`resolve_hf_uri`), anything else as a path.

    Example:
        >>> local_path("/data/llama")
        PosixPath('/data/llama')
    """
    return resolve_hf_uri(location) if is_hf_uri(location) else Path(location)
