"""`DataSource`: text, JSONL and directories read into records; every malformed file is a
DataError naming the file and line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from lmhub.data.sources import DataSource
from lmhub.errors import DataError, OptionalDependencyError


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_text_file_is_one_document_or_split_by_separator(tmp_path: Path) -> None:
    file = tmp_path / "book.txt"
    file.write_text("First part.\n\nSecond part.\n\n\n", encoding="utf-8")
    assert list(DataSource(file)) == [{"text": "First part.\n\nSecond part.\n\n\n"}]
    split = DataSource(file, doc_separator="\n\n")
    assert split.kind == "text"
    assert list(split) == [{"text": "First part."}, {"text": "Second part."}]


def test_jsonl_text_and_seq2seq(tmp_path: Path) -> None:
    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "id": 1}, {"text": "b"}])
    assert DataSource(text).kind == "text"
    assert list(DataSource(text)) == [{"text": "a"}, {"text": "b"}]
    pairs = tmp_path / "p.jsonl"
    pairs.write_text('{"prompt": "1+1=", "target": "2"}\n\n{"prompt": "", "target": "x"}\n')
    source = DataSource(pairs)
    assert source.kind == "seq2seq"
    assert list(source) == [{"prompt": "1+1=", "target": "2"}, {"prompt": "", "target": "x"}]


def test_directory_reads_its_files_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "sub" / "c.txt").write_text("sea")
    write_jsonl(tmp_path / "a.jsonl", [{"text": "ay"}])
    (tmp_path / "notes.md").write_text("ignored")
    source = DataSource(tmp_path)
    assert [f.name for f in source.files] == ["a.jsonl", "b.txt", "c.txt"]
    assert [r["text"] for r in source] == ["ay", "bee", "sea"]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        (b'{"text": "ok"}\n{"txt": "no"}\n', 2, "Line 2 of .* has no 'text' field"),
        (b'{"text": "ok"}\n\n{"text": "bad\n', 3, "Line 3 of .* is not valid JSON"),
        (b'{"text": "ok"}\n{"text": "\xff"}\n', 2, "Line 2 of .* is not valid UTF-8"),
        (b'{"text": 5}\n', 1, "The 'text' field on line 1 of .* is a JSON number, not a string"),
        (b"[1, 2]\n", 1, "has neither a 'text' field"),
        (b'{"prompt": "a", "target": "b"}\n"x"\n', 2, "is a JSON string, not an object"),
        (b'{"prompt": "a", "target": "b"}\n{"prompt": "a"}\n', 2, "no 'target' field"),
    ],
)
def test_bad_jsonl_names_the_file_and_line(
    tmp_path: Path, content: bytes, line: int, match: str
) -> None:
    file = tmp_path / "data.jsonl"
    file.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        list(DataSource(file))
    assert info.value.path == file and info.value.line == line
    assert str(file) in str(info.value)


def test_bad_text_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nstill fine\nnot \xc3\x28 fine\n")
    with pytest.raises(DataError, match=r"Line 3 of .*bad.txt is not valid UTF-8") as info:
        list(DataSource(bad))
    assert info.value.line == 3
    for name, content in [("empty.txt", b""), ("blank.txt", b" \n\n"), ("empty.jsonl", b"\n")]:
        file = tmp_path / name
        file.write_bytes(content)
        with pytest.raises(DataError, match=f"The data file .*{name} is empty"):
            list(DataSource(file))


def test_bad_paths_and_mixed_directories(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data file or directory"):
        DataSource(tmp_path / "missing.txt")
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(DataError, match="not a data file lmhub reads"):
        DataSource(tmp_path / "data.csv")
    with pytest.raises(DataError, match=r"holds no \.txt or \.jsonl files"):
        DataSource(tmp_path)
    (tmp_path / "a.txt").write_text("text")
    write_jsonl(tmp_path / "b.jsonl", [{"prompt": "p", "target": "t"}])
    with pytest.raises(DataError, match="mixes pre-training text"):
        DataSource(tmp_path)


def _datasets_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    (folder / "state.json").write_text("{}")
    (folder / "data-00000-of-00001.arrow").write_bytes(b"\0arrow")
    return folder


def test_datasets_folder_needs_the_optional_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # importing it now fails
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(OptionalDependencyError, match="'datasets' package"):
        DataSource(_datasets_folder(tmp_path))


def test_datasets_folder_is_read_through_load_from_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for the optional package: load_from_disk returns a DatasetDict-like mapping.
    class Rows(list):
        column_names = ("prompt", "target", "extra")

    loaded: list[str] = []

    def load_from_disk(path: str) -> dict[str, Rows]:
        loaded.append(path)
        return {"train": Rows([{"prompt": "p1", "target": "t1", "extra": 0}])}

    fake = types.ModuleType("datasets")
    fake.load_from_disk = load_from_disk  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    folder = _datasets_folder(tmp_path)
    source = DataSource(folder)
    assert source.kind == "seq2seq" and loaded[0] == str(folder)
    assert list(source) == [{"prompt": "p1", "target": "t1"}]
    assert "data-00000-of-00001.arrow" in [f.name for f in source.files]
    with pytest.raises(DataError, match="has no split 'valid'"):
        DataSource(folder, split="valid")
