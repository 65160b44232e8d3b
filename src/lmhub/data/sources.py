"""Training data sources: plain text, JSON lines, a directory of them, or a ``datasets`` folder.

A source yields records, one per example, of one of two kinds:

* ``"text"`` (pre-training): ``{"text": ...}``. A plain text file is one document (or, with
  ``doc_separator``, one per separated part); a JSONL line ``{"text": ...}`` is one document.
* ``"seq2seq"``: ``{"prompt": ..., "target": ...}`` from JSONL lines.

A directory holds ``*.txt`` and ``*.jsonl`` files (searched recursively, read in sorted order),
all of one kind. A folder written by ``datasets``' ``save_to_disk`` is read with that optional
package, when installed. Every malformed input (non-UTF-8 bytes, bad JSON, a missing or
non-string field, an empty file) is a :class:`~lmhub.errors.DataError` naming the file and line.

Example:
    >>> source = DataSource("corpus/")  # doctest: +SKIP
    >>> source.kind, next(iter(source))  # doctest: +SKIP
    ('text', {'text': 'It was the best of times, ...'})
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from lmhub.errors import DataError, OptionalDependencyError

__all__ = ["DATA_SUFFIXES", "DataKind", "DataSource"]

DataKind = Literal["text", "seq2seq"]
DATA_SUFFIXES: tuple[str, ...] = (".txt", ".jsonl")
"""The file types a data directory is searched for."""

_FIELDS: dict[DataKind, tuple[str, ...]] = {"text": ("text",), "seq2seq": ("prompt", "target")}
# Files save_to_disk writes next to the Arrow shards.
_DATASETS_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


class DataSource:
    """The records of a file, a directory of files, or a ``datasets`` folder (see module doc).

    Iterating yields record dicts; :attr:`kind` says which fields they have and :attr:`files`
    lists what is read (their contents key the token cache).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        doc_separator: str | None = None,
        split: str = "train",
    ) -> None:
        """Args:
        path: a ``.txt`` or ``.jsonl`` file, a directory of them, or a ``save_to_disk`` folder.
        doc_separator: split plain text files into documents at this string (e.g. ``"\\n\\n"``);
            ``None`` makes each text file one document.
        split: the split of a saved ``DatasetDict`` to read.
        """
        self.path = Path(path)
        self.doc_separator = doc_separator
        self.split = split
        self.is_datasets_folder = self.path.is_dir() and any(
            (self.path / m).is_file() for m in _DATASETS_MARKERS
        )
        self.files = self._find_files()
        self.kind: DataKind = self._detect_kind()

    def __iter__(self) -> Iterator[dict[str, str]]:
        if self.is_datasets_folder:
            yield from self._datasets_records()
            return
        for file in self.files:
            if file.suffix == ".jsonl":
                yield from _jsonl_records(file, self.kind)
            else:
                yield from _text_records(file, self.doc_separator)

    def _find_files(self) -> list[Path]:
        if self.is_datasets_folder:
            return sorted(p for p in self.path.rglob("*") if p.is_file())
        if self.path.is_file():
            if self.path.suffix not in DATA_SUFFIXES:
                raise DataError(
                    f"{self.path} is not a data file lmhub reads: use a .txt file (plain text) or "
                    "a .jsonl file (one JSON object per line).",
                    path=self.path,
                )
            return [self.path]
        if not self.path.is_dir():
            raise DataError(
                f"There is no data file or directory at {self.path}. Check the path.",
                path=self.path,
            )
        files = sorted(
            p
            for p in self.path.rglob("*")
            if p.is_file() and p.suffix in DATA_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise DataError(
                f"The directory {self.path} holds no .txt or .jsonl files. Put the training data "
                "there, or pass the path of a data file.",
                path=self.path,
            )
        return files

    def _detect_kind(self) -> DataKind:
        if self.is_datasets_folder:
            return _kind_of(self._datasets_columns(), self.path, None)
        kinds = {file: _file_kind(file) for file in self.files}
        if len(set(kinds.values())) > 1:
            by_kind = {kind: file for file, kind in kinds.items()}
            raise DataError(
                f"The directory {self.path} mixes pre-training text ({by_kind['text']}) and "
                f"prompt/target pairs ({by_kind['seq2seq']}). Keep one kind of data per "
                "directory.",
                path=self.path,
            )
        return next(iter(kinds.values()))

    def _datasets(self) -> Any:
        if importlib.util.find_spec("datasets") is None:
            raise OptionalDependencyError(
                "datasets", f"Reading the `datasets` folder {self.path}", "data"
            )
        data = importlib.import_module("datasets").load_from_disk(str(self.path))
        if hasattr(data, "keys"):  # a DatasetDict
            if self.split not in data:
                raise DataError(
                    f"The `datasets` folder {self.path} has no split {self.split!r} (it has "
                    f"{sorted(data.keys())}). Pass one of those as the split.",
                    path=self.path,
                )
            data = data[self.split]
        return data

    def _datasets_columns(self) -> list[str]:
        return list(self._datasets().column_names)

    def _datasets_records(self) -> Iterator[dict[str, str]]:
        fields = _FIELDS[self.kind]
        for row, record in enumerate(self._datasets(), start=1):
            yield _checked(record, fields, self.path, row)


def _file_kind(file: Path) -> DataKind:
    if file.suffix != ".jsonl":
        return "text"
    for line_number, record in _json_lines(file):
        return _kind_of(record, file, line_number)
    raise DataError(f"The data file {file} is empty. Remove it or fill it.", path=file)


def _kind_of(keys: Any, path: Path, line: int | None) -> DataKind:
    if "text" in keys:
        return "text"
    if "prompt" in keys and "target" in keys:
        return "seq2seq"
    where = f"Line {line} of {path}" if line is not None else f"The `datasets` folder {path}"
    raise DataError(
        f"{where} has neither a 'text' field nor 'prompt' and 'target' fields (it has "
        f"{sorted(keys)}). Use {{'text': ...}} for pre-training or {{'prompt': ..., 'target': "
        "...}} for seq2seq data.",
        path=path,
        line=line,
    )


def _checked(record: Any, fields: tuple[str, ...], path: Path, line: int) -> dict[str, str]:
    if not isinstance(record, dict):
        raise DataError(
            f"Line {line} of {path} is a JSON {_json_type(record)}, not an object. Write one "
            "object per line.",
            path=path,
            line=line,
        )
    for field in fields:
        if field not in record:
            raise DataError(
                f"Line {line} of {path} has no {field!r} field (it has {sorted(record)}). Every "
                f"line of this data must have {' and '.join(map(repr, fields))}.",
                path=path,
                line=line,
            )
        if not isinstance(record[field], str):
            raise DataError(
                f"The {field!r} field on line {line} of {path} is a JSON "
                f"{_json_type(record[field])}, not a string. Write it as a JSON string.",
                path=path,
                line=line,
            )
    return {field: record[field] for field in fields}


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _json_lines(file: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for each non-blank line of ``file``."""
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decode(raw, file, number)
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"Line {number} of {file} is not valid JSON ({exc.msg} at column "
                    f"{exc.colno}). Fix that line; JSONL needs one JSON object per line.",
                    path=file,
                    line=number,
                ) from None


def _jsonl_records(file: Path, kind: DataKind) -> Iterator[dict[str, str]]:
    found = False
    for number, record in _json_lines(file):
        found = True
        yield _checked(record, _FIELDS[kind], file, number)
    if not found:
        raise DataError(f"The data file {file} is empty. Remove it or fill it.", path=file)


def _text_records(file: Path, doc_separator: str | None) -> Iterator[dict[str, str]]:
    raw = file.read_bytes()
    text = _decode(raw, file, None)
    if not text.strip():
        raise DataError(f"The data file {file} is empty. Remove it or fill it.", path=file)
    parts = text.split(doc_separator) if doc_separator else [text]
    for part in parts:
        if part.strip():
            yield {"text": part}


def _decode(raw: bytes, file: Path, line: int | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if line is None:  # a whole file: find the line of the bad byte
            line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"Line {line} of {file} is not valid UTF-8 (byte {raw[exc.start]:#04x}). Save the "
            "file as UTF-8.",
            path=file,
            line=line,
        ) from None
