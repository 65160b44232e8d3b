"""Tokenise a data source once and keep the ids on disk as a memory-mapped array.

The cache entry is keyed by a hash of the source files' contents, the tokenizer (its class,
vocabulary file contents and special tokens) and the tokenising options, so a second run with
the same data and tokenizer maps the array back in at once, and any change re-tokenises.

An entry is a directory of:

* ``tokens.bin``: every example's ids end to end (``uint16`` when the vocabulary fits, else
  ``int32``), read back with ``numpy.memmap``;
* ``offsets.npy``: ``[num_examples + 1]`` where each example starts;
* ``target_starts.npy`` (seq2seq only): where each example's target starts;
* ``meta.json``: the kind, dtype and counts.

It is written under a temporary name and renamed into place, so an interrupted run never leaves
a half-written entry behind.

Example:
    >>> data = tokenize_source(DataSource("corpus.txt"), load_tokenizer("byte"))  # doctest: +SKIP
    >>> data.num_tokens, data[0]["input_ids"][:3]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmhub.checkpoint.checksum import cache_dir as lmhub_cache_dir
from lmhub.checkpoint.checksum import sha256_file
from lmhub.data.sources import DataKind, DataSource
from lmhub.data.tokenizers import Tokenizer

__all__ = ["TokenizedData", "resolve_bos_eos", "tokenize_source", "tokenizer_fingerprint"]

_FORMAT = 1  # bump when the entry layout or tokenising rules change
_BATCH = 256  # records per encode_batch call


@dataclass(kw_only=True)
class TokenizedData:
    """The tokenised examples of a source, memory-mapped from the cache."""

    kind: DataKind
    """``"text"`` or ``"seq2seq"``, as the source's."""
    tokens: np.ndarray
    """Every example's ids end to end (a read-only memmap)."""
    offsets: np.ndarray
    """``[num_examples + 1]`` start of each example in :attr:`tokens`, then the end."""
    target_starts: np.ndarray | None
    """Seq2seq only: the start of each example's target in :attr:`tokens`."""
    path: Path
    """The cache entry's directory."""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_tokens(self) -> int:
        """Total ids over all examples."""
        return int(self.offsets[-1])

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Example ``index``: ``{"input_ids"}`` for text, ``{"prompt_ids", "target_ids"}``
        for seq2seq (int64 copies, safe to hand to torch)."""
        if not 0 <= index < len(self):
            raise IndexError(f"Example {index} is out of range for {len(self)} examples.")
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        if self.target_starts is None:
            return {"input_ids": self.tokens[start:stop].astype(np.int64)}
        middle = int(self.target_starts[index])
        return {
            "prompt_ids": self.tokens[start:middle].astype(np.int64),
            "target_ids": self.tokens[middle:stop].astype(np.int64),
        }


def resolve_bos_eos(
    tokenizer: Tokenizer, add_bos: bool | None, add_eos: bool | None
) -> tuple[bool, bool]:
    """The data config's ``add_bos`` / ``add_eos`` with ``None`` resolved: BOS as the
    tokenizer's ``add_bos_token`` says, EOS whenever the tokenizer has one.

    Example:
        >>> from lmhub.data.tokenizers import ByteTokenizer
        >>> resolve_bos_eos(ByteTokenizer(), None, None)
        (False, True)
    """
    bos = tokenizer.add_bos_token if add_bos is None else add_bos
    eos = tokenizer.eos_token_id is not None if add_eos is None else add_eos
    return bool(bos), bool(eos)


def tokenize_source(
    source: DataSource,
    tokenizer: Tokenizer,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    add_bos: bool | None = None,
    add_eos: bool | None = None,
    progress: bool = True,
) -> TokenizedData:
    """Return the tokenised examples of ``source``, from the cache when it holds them.

    Args:
        cache_dir: where entries live; defaults to ``$LMHUB_CACHE_DIR/tokens``.
        add_bos: start each text (each prompt) with BOS; defaults to the tokenizer's
            ``add_bos_token``.
        add_eos: end each text (each target) with EOS, so the model learns where documents
            end; defaults to whether the tokenizer has an EOS token.
        progress: show a progress bar while tokenising (on a terminal only).
    """
    add_bos, add_eos = resolve_bos_eos(tokenizer, add_bos, add_eos)
    root = Path(cache_dir) if cache_dir is not None else lmhub_cache_dir() / "tokens"
    key = _cache_key(source, tokenizer, add_bos=add_bos, add_eos=add_eos)
    entry = root / key
    if not (entry / "meta.json").is_file():
        _write_entry(source, tokenizer, entry, add_bos=add_bos, add_eos=add_eos, progress=progress)
    return _read_entry(entry)


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    """A hash that changes whenever the tokenizer could encode differently."""
    h = hashlib.sha256()
    kind = type(tokenizer)
    h.update(f"{kind.__module__}.{kind.__qualname__}:{tokenizer.vocab_size}".encode())
    specials = (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    h.update(repr((specials, ids)).encode())
    # The vocabulary itself: the serialised Rust tokenizer or SentencePiece model.
    rust = getattr(tokenizer, "_tok", None)
    if rust is not None and hasattr(rust, "to_str"):
        h.update(rust.to_str().encode())
    sentencepiece = getattr(tokenizer, "_sp", None)
    if sentencepiece is not None:
        h.update(sentencepiece.serialized_model_proto())
    return h.hexdigest()


def _cache_key(source: DataSource, tokenizer: Tokenizer, *, add_bos: bool, add_eos: bool) -> str:
    h = hashlib.sha256()
    options = {
        "format": _FORMAT,
        "kind": source.kind,
        "doc_separator": source.doc_separator,
        "split": source.split if source.is_datasets_folder else None,
        "add_bos": add_bos,
        "add_eos": add_eos,
        "tokenizer": tokenizer_fingerprint(tokenizer),
    }
    h.update(json.dumps(options, sort_keys=True).encode())
    for file in source.files:
        # The name within the source matters (it orders the files), the location does not.
        name = file.relative_to(source.path) if file != source.path else Path(file.name)
        h.update(f"\0{name.as_posix()}\0{sha256_file(file)}".encode())
    return h.hexdigest()[:32]


def _encoded(
    records: Iterable[dict[str, str]],
    kind: DataKind,
    tokenizer: Tokenizer,
    add_bos: bool,
    add_eos: bool,
) -> Iterator[tuple[list[int], int]]:
    """``(ids, target start within ids)`` per record, encoded a batch at a time."""
    batch: list[dict[str, str]] = []
    for record in records:
        batch.append(record)
        if len(batch) == _BATCH:
            yield from _encode_batch(batch, kind, tokenizer, add_bos, add_eos)
            batch = []
    if batch:
        yield from _encode_batch(batch, kind, tokenizer, add_bos, add_eos)


def _encode_batch(
    batch: list[dict[str, str]], kind: DataKind, tokenizer: Tokenizer, add_bos: bool, add_eos: bool
) -> Iterator[tuple[list[int], int]]:
    if kind == "text":
        texts = tokenizer.encode_batch([r["text"] for r in batch], add_bos=add_bos, add_eos=add_eos)
        for ids in texts:
            yield ids, len(ids)
        return
    prompts = tokenizer.encode_batch([r["prompt"] for r in batch], add_bos=add_bos)
    targets = tokenizer.encode_batch([r["target"] for r in batch], add_eos=add_eos)
    for prompt, target in zip(prompts, targets):
        yield prompt + target, len(prompt)


def _write_entry(
    source: DataSource,
    tokenizer: Tokenizer,
    entry: Path,
    *,
    add_bos: bool,
    add_eos: bool,
    progress: bool,
) -> None:
    # rich.progress costs ~90 ms to import: only on a cache miss, not at `import lmhub`.
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.int32)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        offsets, target_starts = [0], []
        console = Console(stderr=True)
        with (
            (tmp / "tokens.bin").open("wb") as out,
            Progress(
                SpinnerColumn(),
                TextColumn("Tokenising {task.description}: {task.completed:,} examples"),
                TextColumn("{task.fields[tokens]:,} tokens"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                disable=not (progress and console.is_terminal),
            ) as bar,
        ):
            task = bar.add_task(str(source.path), total=None, tokens=0)
            encoded = _encoded(source, source.kind, tokenizer, add_bos, add_eos)
            for ids, target_start in encoded:
                target_starts.append(offsets[-1] + target_start)
                offsets.append(offsets[-1] + len(ids))
                np.asarray(ids, dtype=dtype).tofile(out)
                bar.update(task, advance=1, tokens=offsets[-1])
        np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        if source.kind == "seq2seq":
            np.save(tmp / "target_starts.npy", np.asarray(target_starts, dtype=np.int64))
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "kind": source.kind,
            "dtype": dtype.name,
            "num_examples": len(offsets) - 1,
            "num_tokens": offsets[-1],
            "source": str(source.path),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, entry)
        except OSError:
            if not (entry / "meta.json").is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path) -> TokenizedData:
    meta = json.loads((entry / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    tokens = (
        np.memmap(entry / "tokens.bin", dtype=dtype, mode="r", shape=(meta["num_tokens"],))
        if meta["num_tokens"]
        else np.zeros(0, dtype=dtype)  # numpy cannot map an empty file
    )
    starts = entry / "target_starts.npy"
    return TokenizedData(
        kind=meta["kind"],
        tokens=tokens,
        offsets=np.load(entry / "offsets.npy"),
        target_starts=np.load(starts) if starts.is_file() else None,
        path=entry,
    )
