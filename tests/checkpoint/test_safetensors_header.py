"""Hostile safetensors files: every malformed header is a ModelCheckpointError, never a raw one.

Files are built by hand: an 8-byte little-endian header length, the JSON header, the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmhub.checkpoint.readers import SAFETENSORS_DTYPES, open_checkpoint
from lmhub.errors import ModelCheckpointError


def _write(path: Path, header: object, data: bytes = b"", *, raw: bytes | None = None) -> Path:
    body = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body + data)
    return path


def _read_all(path: Path, mmap: bool) -> dict[str, torch.Tensor]:
    with open_checkpoint(path, mmap=mmap) as reader:
        return dict(reader.iter_tensors())


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


BAD_FILES: dict[str, tuple[object, bytes, str]] = {
    "overlapping offsets": (
        {"a": _entry("F32", [4], 0, 16), "b": _entry("F32", [2], 8, 16)},
        bytes(16),
        "overlap",
    ),
    "a tensor inside another": (
        {"a": _entry("F32", [4], 0, 16), "b": _entry("U8", [2], 4, 6)},
        bytes(16),
        "overlap",
    ),
    "a dimension of 2**63": ({"w": _entry("F32", [2**63, 0], 0, 0)}, b"", "too large"),
    "elements beyond int64": ({"w": _entry("U8", [2**32, 2**32, 0], 0, 0)}, b"", "too large"),
    "offsets out of the file": ({"w": _entry("F32", [4], 0, 16)}, bytes(8), "past its end"),
    "offsets far out of the file": (
        {"w": _entry("U8", [2**40], 2**41, 2**41 + 2**40)},
        bytes(8),
        "past its end",
    ),
    "a negative dimension": ({"w": _entry("F32", [-1, 4], 0, 16)}, bytes(16), "invalid shape"),
    "a negative offset": ({"w": _entry("U8", [4], -4, 0)}, bytes(4), "invalid data_offsets"),
    "a float dimension": ({"w": _entry("F32", [2.0], 0, 8)}, bytes(8), "invalid shape"),
    "a bool dimension": ({"w": _entry("U8", [True], 0, 1)}, bytes(1), "invalid shape"),
    "an unknown dtype": ({"w": _entry("F128", [1], 0, 16)}, bytes(16), "unknown"),
    "a list as dtype": ({"w": _entry(["F32"], [1], 0, 4)}, bytes(4), "unknown"),  # type: ignore[arg-type]
    "a dtype that is null": ({"w": {"shape": [1], "data_offsets": [0, 4]}}, bytes(4), "unknown"),
    "metadata that is a list": ({"__metadata__": ["x"]}, b"", "__metadata__"),
    "metadata with a number": ({"__metadata__": {"format": 1}}, b"", "__metadata__"),
}


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_headers_are_refused(tmp_path: Path, case: str, mmap: bool) -> None:
    header, data, match = BAD_FILES[case]
    path = _write(tmp_path / "model.safetensors", header, data)
    with pytest.raises(ModelCheckpointError, match=match) as info:
        _read_all(path, mmap)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"w": {"shape": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}", "nested too deeply"),
        (b'{"w": {"dtype": "U8", "shape": [' + b"9" * 5000 + b"]}}", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_unparseable_headers_are_refused(tmp_path: Path, raw: bytes, match: str) -> None:
    path = _write(tmp_path / "model.safetensors", None, raw=raw)
    with pytest.raises(ModelCheckpointError, match=match):
        _read_all(path, mmap=True)


def test_header_length_larger_than_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelCheckpointError, match="runs past the end"):
        _read_all(path, mmap=False)
    path.write_bytes((2**64 - 1).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelCheckpointError, match="exceeds"):
        _read_all(path, mmap=False)


def test_zero_sized_tensors_may_share_an_offset(tmp_path: Path) -> None:
    header = {
        "a": _entry("F32", [0, 3], 0, 0),
        "b": _entry("F32", [2**40, 0], 0, 0),
        "c": _entry("F32", [1], 0, 4),
    }
    path = _write(tmp_path / "model.safetensors", header, bytes(4))
    tensors = _read_all(path, mmap=True)
    assert tensors["b"].shape == (2**40, 0) and tensors["c"].tolist() == [0.0]


# --------------------------------------------------------------------------------------------
# Fuzz: whatever the bytes, only ModelCheckpointError escapes, and a file that reads back
# yields tensors whose sizes fit their shapes.

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=6),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
_dim = st.one_of(st.integers(min_value=-2, max_value=9), st.sampled_from([2**31, 2**63, 2**64]))
_offset = st.one_of(st.integers(min_value=-4, max_value=80), st.sampled_from([2**63, 2**64]))
_entry_st = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from([*SAFETENSORS_DTYPES, "F128", "f32", ""]), _json),
        "shape": st.one_of(st.lists(_dim, max_size=3), _json),
        "data_offsets": st.one_of(st.lists(_offset, min_size=2, max_size=2), _json),
    }
)
_header = st.dictionaries(
    st.sampled_from(["a", "b", "c", "__metadata__"]), st.one_of(_entry_st, _json), max_size=3
)


def _check_read(path: Path) -> None:
    for mmap in (True, False):
        try:
            tensors = _read_all(path, mmap)
        except ModelCheckpointError:
            continue
        size = path.stat().st_size
        for t in tensors.values():
            assert t.numel() * t.element_size() <= size


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_FUZZ
@given(header=_header, data=st.binary(max_size=80))
def test_fuzzed_json_headers(tmp_path: Path, header: dict[str, object], data: bytes) -> None:
    path = tmp_path / "model.safetensors"
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    _check_read(path)


@_FUZZ
@given(raw=st.binary(max_size=120), length=st.one_of(st.none(), st.integers(0, 2**64 - 1)))
def test_fuzzed_header_bytes(tmp_path: Path, raw: bytes, length: int | None) -> None:
    path = tmp_path / "model.safetensors"
    prefix = (len(raw) if length is None else length).to_bytes(8, "little")
    path.write_bytes(prefix + raw)
    _check_read(path)
