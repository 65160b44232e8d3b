"""Tests for lmhub.checkpoint.readers: formats, layouts, zero-copy mmap, corrupt files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lmhub.checkpoint.readers import open_checkpoint, read_safetensors_header
from lmhub.errors import ModelCheckpointError


@dataclasses.dataclass
class TrainArgs:
    """A custom class inside a pickle: restricted unpickling must refuse it."""

    lr: float = 1e-3


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {
        "f32": torch.randn(3, 5, generator=g),
        "f64": torch.randn(4, generator=g, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(7, 2, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3),
        "i32": torch.arange(5, dtype=torch.int32),
        "i16": torch.arange(3, dtype=torch.int16),
        "i8": torch.arange(-3, 3, dtype=torch.int8),
        "u8": torch.arange(9, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    if hasattr(torch, "float8_e4m3fn"):
        out["f8"] = torch.randn(6, generator=g).to(torch.float8_e4m3fn)
    return out


def _assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name, t in want.items():
        assert got[name].dtype == t.dtype, name
        assert got[name].shape == t.shape, name
        # Compare bytes: exact, and works for dtypes without comparison kernels (float8).
        assert torch.equal(got[name].reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8))


def _load(path: Path, **kwargs: object) -> dict[str, torch.Tensor]:
    with open_checkpoint(path, **kwargs) as reader:  # type: ignore[arg-type]
        return dict(reader.iter_tensors())


def _write_raw_safetensors(path: Path, header: dict[str, object], data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


# ---------------------------------------------------------------------------------------------
# Safetensors layouts


@pytest.mark.parametrize("mmap", [True, False])
def test_single_file_matches_what_safetensors_wrote(tmp_path: Path, mmap: bool) -> None:
    want = _tensors()
    save_file(want, tmp_path / "w.safetensors", metadata={"format": "pt", "note": "hi"})
    with open_checkpoint(tmp_path / "w.safetensors", mmap=mmap) as reader:
        got = dict(reader.iter_tensors())
        assert reader.keys() == list(got)
        assert reader.metadata() == {"format": "pt", "note": "hi"}
        assert reader.paths == [tmp_path / "w.safetensors"]
    _assert_same(got, want)


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = transformers.LlamaForCausalLM(config)
    directory = tmp_path_factory.mktemp("hf_llama")
    model.save_pretrained(directory, max_shard_size="100KB")
    return directory, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mmap", [True, False])
def test_transformers_sharded_save_reads_back(
    hf_llama: tuple[Path, dict[str, torch.Tensor]], mmap: bool
) -> None:
    directory, state = hf_llama
    with open_checkpoint(directory, mmap=mmap) as reader:
        shards = sorted(directory.glob("model-*.safetensors"))
        assert len(shards) > 1
        assert reader.paths == shards
        assert sorted(reader.keys()) == sorted(state)
        got = dict(reader.iter_tensors())
    _assert_same(got, state)


def test_shards_are_read_once_each_in_sorted_order(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2)}, tmp_path / "part-b.safetensors")
    save_file({"b": torch.zeros(2), "c": torch.ones(1)}, tmp_path / "part-a.safetensors")
    weight_map = {"a": "part-b.safetensors", "b": "part-a.safetensors", "c": "part-a.safetensors"}
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for path in (tmp_path, index):
        with open_checkpoint(path) as reader:
            assert reader.paths == [
                tmp_path / "part-a.safetensors",
                tmp_path / "part-b.safetensors",
            ]
            assert [name for name, _ in reader.iter_tensors()] == ["b", "c", "a"]


def test_directory_layouts_and_safetensors_preference(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    assert torch.equal(_load(tmp_path)["w"], torch.zeros(2))
    save_file({"w": torch.ones(2)}, tmp_path / "consolidated.safetensors")
    assert torch.equal(_load(tmp_path)["w"], torch.ones(2))  # the only *.safetensors wins
    save_file({"w": torch.full((2,), 7.0)}, tmp_path / "model.safetensors")
    assert torch.equal(_load(tmp_path)["w"], torch.full((2,), 7.0))  # model.safetensors wins

    only_pt = tmp_path / "pt"
    only_pt.mkdir()
    (only_pt / "config.json").write_text("{}")
    torch.save({"w": torch.ones(3)}, only_pt / "weights.pth")
    assert torch.equal(_load(only_pt)["w"], torch.ones(3))


def test_shards_without_an_index_do_not_compete_with_a_lone_file(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "weights-00001-of-00002.safetensors")
    save_file({"v": torch.ones(2)}, tmp_path / "weights-00002-of-00002-0a1b2c3d.safetensors")
    with pytest.raises(ModelCheckpointError, match="several candidate weight files"):
        _load(tmp_path)
    save_file({"w": torch.full((2,), 3.0)}, tmp_path / "weights.safetensors")
    assert torch.equal(_load(tmp_path)["w"], torch.full((2,), 3.0))


def test_misaligned_tensor_is_copied_correctly(tmp_path: Path) -> None:
    # "b" starts one byte into the data section, so it cannot be an element-aligned view.
    b = torch.tensor([1.5, -2.0], dtype=torch.float32)
    header = {
        "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]},
    }
    data = bytes([7]) + bytes(b.view(torch.uint8).tolist())
    path = tmp_path / "odd.safetensors"
    _write_raw_safetensors(path, header, data)
    for mmap in (True, False):
        got = _load(path, mmap=mmap)
        assert got["a"].tolist() == [7]
        assert torch.equal(got["b"], b)


# ---------------------------------------------------------------------------------------------
# Memory mapping


def _mappings_of(path: Path) -> list[tuple[int, int]]:
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == str(path):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                spans.append((lo, hi))
    return spans


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_mmap_is_zero_copy_and_writes_stay_private(tmp_path: Path) -> None:
    path = (tmp_path / "w.safetensors").resolve()
    want = {"x": torch.arange(4096, dtype=torch.float32), "y": torch.ones(16, 16).bfloat16()}
    save_file(want, path)
    before = path.read_bytes()
    header = read_safetensors_header(path)

    got = _load(path, mmap=True)
    spans = _mappings_of(path)
    assert spans, "the file should be memory-mapped"
    base = got["x"].untyped_storage().data_ptr()
    assert got["y"].untyped_storage().data_ptr() == base  # one mapping for the whole file
    for name, t in got.items():
        assert any(lo <= t.data_ptr() and t.data_ptr() + t.nbytes <= hi for lo, hi in spans)
        assert t.data_ptr() - base == header.tensors[name].start

    got["x"].fill_(-1.0)  # copy-on-write: the process sees it, the file does not
    assert got["x"][0].item() == -1.0
    assert path.read_bytes() == before
    _assert_same(_load(path, mmap=True), want)


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs Linux /proc")
def test_mmap_false_keeps_no_file_open(tmp_path: Path) -> None:
    path = (tmp_path / "w.safetensors").resolve()
    save_file({"x": torch.arange(10.0)}, path)
    got = _load(path, mmap=False)
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert str(path) not in open_files
    assert not _mappings_of(path)
    path.unlink()
    got["x"] += 1  # the tensor owns its memory
    assert torch.equal(got["x"], torch.arange(10.0) + 1)


def test_tensors_outlive_the_reader_and_closed_reader_refuses(tmp_path: Path) -> None:
    save_file({"x": torch.arange(5.0)}, tmp_path / "model.safetensors")
    reader = open_checkpoint(tmp_path, mmap=True)
    got = dict(reader.iter_tensors())
    reader.close()
    reader.close()
    assert torch.equal(got["x"], torch.arange(5.0))
    with pytest.raises(ValueError, match="closed"):
        reader.keys()


# ---------------------------------------------------------------------------------------------
# PyTorch pickles


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("name", ["pytorch_model.bin", "w.pt", "w.pth"])
def test_pickle_files_read_back(tmp_path: Path, name: str, mmap: bool) -> None:
    want = {k: v for k, v in _tensors().items() if k != "f8"}
    torch.save(want, tmp_path / name)
    with open_checkpoint(tmp_path / name, mmap=mmap) as reader:
        assert sorted(reader.keys()) == sorted(want)
        assert reader.metadata() == {}
        got = dict(reader.iter_tensors())
    _assert_same(got, want)


def test_legacy_pickle_format_with_mmap(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(_load(path, mmap=True)["w"], torch.ones(3))


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_training_checkpoint_is_unwrapped(tmp_path: Path, key: str) -> None:
    state = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
    torch.save({key: state, "epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "ckpt.pt")
    _assert_same(_load(tmp_path / "ckpt.pt"), state)


def test_custom_class_is_refused_by_name_without_suggesting_full_unpickling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {"w": torch.ones(2)}, "args": TrainArgs()}, path)
    for restrict in (None, True):
        with pytest.raises(ModelCheckpointError) as info:
            _load(path, restrict=restrict)
        message = str(info.value)
        assert str(path) in message and "TrainArgs" in message and "refuses" in message
        assert "restrict=False" not in message and "weights_only=False" not in message
        assert info.value.path == path
    assert torch.equal(_load(path, restrict=False)["w"], torch.ones(2))


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([torch.ones(1)], "holds a list"),
        ({"w": torch.ones(1), "step": 3}, "not a state dict"),
        ({"model": {"w": torch.ones(1)}, "state_dict": {"w": torch.ones(1)}}, "both"),
    ],
)
def test_pickle_that_is_not_a_state_dict(tmp_path: Path, obj: object, match: str) -> None:
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(ModelCheckpointError, match=match) as info:
        _load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("payload", [b"not a pickle at all" * 4, b""])
def test_garbage_pickle(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(payload)
    with pytest.raises(ModelCheckpointError) as info:
        _load(tmp_path)
    assert str(path) in str(info.value)
    assert "corrupt" in str(info.value)


def test_sharded_pickles_are_checked_against_the_index(tmp_path: Path) -> None:
    torch.save({"a": torch.ones(1)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.ones(2)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    index = tmp_path / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"weight_map": weight_map}))
    with open_checkpoint(tmp_path, mmap=True) as reader:
        assert reader.keys() == ["a", "b"]
        assert [k for k, _ in reader.iter_tensors()] == ["a", "b"]

    weight_map["c"] = "pytorch_model-00002-of-00002.bin"
    index.write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(ModelCheckpointError, match="'c'") as info:
        _load(tmp_path)
    assert "pytorch_model-00002-of-00002.bin" in str(info.value)


# ---------------------------------------------------------------------------------------------
# Errors


def _valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(64.0), "v": torch.ones(8)}, path)
    return path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _tiny(path: Path) -> None:
    path.write_bytes(b"\x01\x02\x03")


def _huge_header_length(path: Path) -> None:
    path.write_bytes((10**12).to_bytes(8, "little") + path.read_bytes()[8:])


def _header_length_past_end(path: Path) -> None:
    path.write_bytes((10**6).to_bytes(8, "little") + path.read_bytes()[8:])


def _garbage_header(path: Path) -> None:
    path.write_bytes((16).to_bytes(8, "little") + b"\xff\xfe garbage!!!!\x00" + bytes(64))


def _header_not_object(path: Path) -> None:
    _write_raw_safetensors(path, [1, 2], b"")  # type: ignore[arg-type]


def _offsets_past_end(path: Path) -> None:
    _write_raw_safetensors(
        path, {"w": {"dtype": "F32", "shape": [64], "data_offsets": [0, 256]}}, bytes(100)
    )


def _shape_does_not_fit(path: Path) -> None:
    _write_raw_safetensors(
        path, {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)
    )


def _unknown_dtype(path: Path) -> None:
    _write_raw_safetensors(
        path, {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8)
    )


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _tiny,
        _huge_header_length,
        _header_length_past_end,
        _garbage_header,
        _header_not_object,
        _offsets_past_end,
        _shape_does_not_fit,
        _unknown_dtype,
    ],
)
def test_corrupt_safetensors(tmp_path: Path, damage, mmap: bool) -> None:  # type: ignore[no-untyped-def]
    path = _valid_file(tmp_path)
    damage(path)
    with pytest.raises(ModelCheckpointError) as info:
        _load(tmp_path, mmap=mmap)
    assert str(path) in str(info.value)
    assert info.value.path == path


def _sharded(tmp_path: Path) -> Path:
    save_file({"a": torch.ones(2)}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"b": torch.ones(3)}, tmp_path / "model-00002-of-00002.safetensors")
    index = tmp_path / "model.safetensors.index.json"
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    index.write_text(json.dumps({"metadata": {"total_size": 20}, "weight_map": weight_map}))
    return index


def test_missing_shard(tmp_path: Path) -> None:
    _sharded(tmp_path)
    shard = tmp_path / "model-00002-of-00002.safetensors"
    shard.unlink()
    with pytest.raises(ModelCheckpointError, match="does not exist") as info:
        open_checkpoint(tmp_path)
    assert str(shard) in str(info.value) and info.value.path == shard


def test_index_names_a_key_its_shard_lacks(tmp_path: Path) -> None:
    index = _sharded(tmp_path)
    content = json.loads(index.read_text())
    content["weight_map"]["ghost"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(content))
    with pytest.raises(ModelCheckpointError, match="lacks the tensor 'ghost'") as info:
        open_checkpoint(tmp_path)
    assert "model-00001-of-00002.safetensors" in str(info.value)


def test_shard_holds_a_key_the_index_lacks(tmp_path: Path) -> None:
    _sharded(tmp_path)
    shard = tmp_path / "model-00002-of-00002.safetensors"
    save_file({"b": torch.ones(3), "stray": torch.ones(1)}, shard)
    with pytest.raises(ModelCheckpointError, match="holds the tensor 'stray'") as info:
        open_checkpoint(tmp_path)
    assert "model-00002-of-00002.safetensors" in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"metadata": {}}', "weight_map"),
        ('{"weight_map": {"a": "../elsewhere.safetensors"}}', "not a file name inside"),
    ],
)
def test_bad_index(tmp_path: Path, text: str, match: str) -> None:
    index = _sharded(tmp_path)
    index.write_text(text)
    with pytest.raises(ModelCheckpointError, match=match) as info:
        open_checkpoint(tmp_path)
    assert str(index) in str(info.value)


def test_path_problems(tmp_path: Path) -> None:
    with pytest.raises(ModelCheckpointError, match="does not exist") as info:
        open_checkpoint(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)

    with pytest.raises(ModelCheckpointError, match="is empty"):
        open_checkpoint(tmp_path)

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelCheckpointError, match=r"no weight files \(found config.json\)"):
        open_checkpoint(tmp_path)

    save_file({"a": torch.ones(1)}, tmp_path / "one.safetensors")
    save_file({"a": torch.ones(1)}, tmp_path / "two.safetensors")
    with pytest.raises(ModelCheckpointError, match=r"one\.safetensors, two\.safetensors"):
        open_checkpoint(tmp_path)

    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ModelCheckpointError, match="not a known checkpoint format"):
        open_checkpoint(tmp_path / "weights.npz")
