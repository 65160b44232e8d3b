"""Asset cards: parsing, inheritance, the store, checksums and hf:// resolution."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch

import lmhub
from lmhub.assets.store import AssetStore
from lmhub.errors import AssetCardError, ChecksumMismatchError, ModelCheckpointError
from tests.oracle.hf_models import save_tiny_hf_llama


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_several_cards_per_file_and_inheritance(tmp_path: Path) -> None:
    _write(
        tmp_path / "cards.yaml",
        "name: base_card\nmodel_family: llama\nmodel_arch: llama_tiny\n"
        "model_config: {num_layers: 2, rope_scaling: {kind: linear, factor: 2}}\n"
        "checkpoint: ./weights\n"
        "---\n"
        "name: child\nbase: base_card\nmodel_config: {rope_scaling: {factor: 4}}\n",
    )
    store = AssetStore([tmp_path], include_defaults=False)
    child = store.get_card("child")
    assert child.model_family == "llama" and child.base is not None
    assert child.checkpoint == str(tmp_path / "weights")
    assert child.model_config == {"num_layers": 2, "rope_scaling": {"kind": "linear", "factor": 4}}
    hub = lmhub.get_model_hub("llama")
    hub._store = store
    try:
        cfg = hub.get_model_config("child")
    finally:
        hub._store = None
    assert cfg.num_layers == 2 and cfg.rope_scaling.factor == 4.0 and cfg.model_dim == 256


def test_duplicate_names_name_both_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", "name: dup\nmodel_family: llama\n")
    b = _write(tmp_path / "sub" / "b.yml", "name: dup\nmodel_family: llama\n")
    with pytest.raises(AssetCardError) as info:
        AssetStore([tmp_path], include_defaults=False).names()
    assert str(a) in str(info.value) and str(b) in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model_family: llama\n", "no 'name'"),
        ("name: x\nmodel_config: 3\n", "'model_config'"),
        ("name: x\n  bad: [\n", "not valid YAML"),
        ("- a\n- b\n", "not a mapping"),
        ("name: x\nbase: missing\n", "base 'missing'"),
        ("name: x\nbase: y\n---\nname: y\nbase: x\n", "inherits from itself"),
    ],
)
def test_malformed_cards(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(AssetCardError, match=match) as info:
        store = AssetStore([path], include_defaults=False)
        for _ in store.iter_cards():
            pass
    assert str(path) in str(info.value)


def test_user_dir_from_env_and_register_cards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user"
    _write(user / "mine.yaml", "name: from_env\nmodel_family: llama\nmodel_arch: llama_tiny\n")
    monkeypatch.setenv("LMHUB_CARDS_DIR", str(user))
    extra = _write(tmp_path / "extra.yaml", "name: registered\nmodel_family: llama\n")
    lmhub.register_cards(extra)
    names = {c.name for c in lmhub.get_model_hub("llama").iter_cards()}
    assert {"from_env", "registered", "llama3_8b"} <= names
    with pytest.raises(AssetCardError, match="does not exist"):
        lmhub.register_cards(tmp_path / "nope")


def test_card_load_with_checksum_and_file_uri(tmp_path: Path) -> None:
    hf = save_tiny_hf_llama(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    _write(
        tmp_path / "cards" / "c.yaml",
        f"name: good\nmodel_family: llama\nmodel_arch: llama_tiny\n"
        f"model_config: {{vocab_size: 160, model_dim: 64, ffn_inner_dim: 96, num_layers: 2,"
        f" num_heads: 4, num_kv_heads: 2, max_seq_len: 64}}\n"
        f"checkpoint: file://{tmp_path / 'ckpt'}\nchecksum: sha256:{digest}\n"
        "---\nname: bad\nbase: good\nchecksum: {model.safetensors: '" + "0" * 64 + "'}\n"
        "---\nname: unquoted\nbase: good\nchecksum: {model.safetensors: 1234}\n",
    )
    lmhub.register_cards(tmp_path / "cards")
    model = lmhub.load_model("good")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max() <= 1e-5
    memo = Path(os.environ["LMHUB_CACHE_DIR"]) / "checksums.json"
    assert digest in memo.read_text()
    with pytest.raises(ChecksumMismatchError) as info:
        lmhub.load_model("bad")
    assert info.value.path == weights
    with pytest.raises(AssetCardError, match="Quote each sha256"):
        lmhub.load_model("unquoted")


def test_checksum_memo_skips_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmhub.checkpoint import checksum

    f = _write(tmp_path / "w.safetensors", "abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    checksum.verify_checksums(f, digest)
    monkeypatch.setattr(checksum, "sha256_file", lambda p: pytest.fail("re-hashed"))
    checksum.verify_checksums(f, digest)


def test_hf_uri_resolves_only_from_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _write(
        tmp_path / "c.yaml",
        "name: remote\nmodel_family: llama\nmodel_arch: llama_tiny\ncheckpoint: hf://org/tiny\n",
    )
    lmhub.register_cards(tmp_path / "c.yaml")
    with pytest.raises(ModelCheckpointError, match="never downloads"):
        lmhub.load_model("remote")
    snapshot = cache / "models--org--tiny" / "snapshots" / "abc123"
    hf = save_tiny_hf_llama(snapshot)
    _write(cache / "models--org--tiny" / "refs" / "main", "abc123")
    from lmhub.assets.hf_cache import resolve_hf_uri

    assert resolve_hf_uri("hf://org/tiny") == snapshot
    model = lmhub.load_model(snapshot)
    ids = torch.tensor([[3, 4]])
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max() <= 1e-5


def test_shipped_card_without_local_weights_says_where_to_get_them() -> None:
    with pytest.raises(
        ModelCheckpointError, match=re.escape("huggingface-cli download meta-llama/Llama-3.2-1B")
    ):
        lmhub.load_model("llama3_2_1b")
