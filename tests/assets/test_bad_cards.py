"""Bad asset cards and checksum memos: every one gets an AssetCardError (or is shrugged off, for a
corrupt memo), never a raw Python exception, a hang or a huge message. Property tests feed random
YAML documents to the store."""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmhub
from lmhub import plain_data
from lmhub.assets.card import CARD_FIELDS
from lmhub.assets.store import MAX_BASE_CHAIN, AssetStore
from lmhub.errors import AssetCardError, LmhubError
from lmhub.plain_data import MAX_DEPTH, MAX_ITEMS

GOOD = "name: good\nmodel_family: llama\nmodel_arch: llama_tiny\n"


def _store(path: Path, text: str | bytes) -> AssetStore:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return AssetStore([path], include_defaults=False)


def _resolve_all(store: AssetStore) -> None:
    for card in store.iter_cards():
        _ = (card.model_config, card.checkpoint, card.checksum, card.tokenizer)


def _card_error(path: Path, text: str | bytes) -> AssetCardError:
    with pytest.raises(AssetCardError) as info:
        _resolve_all(_store(path, text))
    message = str(info.value)
    assert str(path) in message and "\n" not in message.strip()
    assert len(message) < 1000  # never a dump of the data
    return info.value


# --- the file itself -----------------------------------------------------------------------------


def test_non_utf8_card_file(tmp_path: Path) -> None:
    error = _card_error(tmp_path / "c.yaml", b"name: caf\xe9\nmodel_family: llama\n")
    assert "not UTF-8" in str(error) and "0xe9 at offset 9" in str(error)
    assert error.path == tmp_path / "c.yaml"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: x\nmodel_arch: !!float abc\n", "YAML cannot build one of its values"),
        ("name: x\nmodel_arch: !!timestamp abc\n", "YAML cannot build"),
        ("name: x\nmodel_arch: 2024-13-45\n", "month must be in 1..12"),
        ("name: x\nmodel_arch: !!python/object:os.system echo\n", "not valid YAML"),
        ("name: x\nmodel_config: {n: " + "1" * 5000 + "}\n", "YAML cannot build"),
        ("name: x\nmodel_config: {n: " + "1" * 100 + "}\n", "integer wider than"),
        ("name: x\nmodel_config: " + "[" * 3000 + "]" * 3000 + "\n", "more than 64 levels deep"),
        ("name: x\nmodel_config: &a {a: *a}\n", "contains itself"),
    ],
)
def test_unreadable_yaml_values(tmp_path: Path, text: str, match: str) -> None:
    assert match in str(_card_error(tmp_path / "c.yaml", text))


def _alias_bomb(levels: int = 9) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n  ".join(lines)


def test_alias_bomb_as_model_config(tmp_path: Path) -> None:
    # 9**9 (387 million) strings if expanded: refused after MAX_ITEMS visits, briefly worded.
    text = f"{GOOD}model_config:\n  {_alias_bomb()}\n"
    error = _card_error(tmp_path / "c.yaml", text)
    assert f"more than {MAX_ITEMS:,} values" in str(error)


def test_alias_bomb_through_merge_keys(tmp_path: Path) -> None:
    lines = ["m0: &m0 {k0: 0}"] + [
        f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, 2000)
    ]
    text = "name: merged\nmodel_config:\n  " + "\n  ".join(lines) + "\n"
    assert "cannot be used" in str(_card_error(tmp_path / "c.yaml", text))


def test_alias_bombs_merged_between_base_and_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each card (one per file) is within bounds; the merged fields of the chain are not. A
    # smaller bound keeps the YAML short.
    monkeypatch.setattr(plain_data, "MAX_ITEMS", 1000)
    for i in range(4):
        base = f"base: c{i - 1}\n" if i else ""
        block = ", ".join(f"k{i}_{j}: 0" for j in range(1000 // 8))
        (tmp_path / f"c{i}.yaml").write_text(f"name: c{i}\n{base}model_config: {{{block}}}\n")
    store = AssetStore([tmp_path], include_defaults=False)
    assert len(store.get_card("c2").model_config) == 3 * (1000 // 8)
    with pytest.raises(AssetCardError, match="merged with its base 'c2'") as info:
        store.get_card("c3")
    assert info.value.name == "c3" and len(str(info.value)) < 1000


# --- fields --------------------------------------------------------------------------------------


def test_unknown_field_suggests_the_close_match(tmp_path: Path) -> None:
    error = _card_error(tmp_path / "c.yaml", GOOD + "chekpoint: ./w\n")
    assert "unknown field 'chekpoint'" in str(error) and "Did you mean 'checkpoint'?" in str(error)
    assert error.name == "good"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1: x", "unknown field 1"),
        ("null: x", "unknown field None"),
        ("'': x", "unknown field ''"),
        ("__class__: x", "unknown field '__class__'"),
        ("? [a, b]\n: 1", "not valid YAML"),  # a list cannot be a key
    ],
)
def test_unknown_non_text_and_odd_keys(tmp_path: Path, line: str, match: str) -> None:
    assert match in str(_card_error(tmp_path / "c.yaml", GOOD + line + "\n"))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("base", "[a, b]", "'base' of card 'good'.* must be a string, not list"),
        ("base", "{a: 1}", "'base' of card 'good'.* must be a string, not dict"),
        ("base", "3", "must be a string, not int"),
        ("model_config", "[1]", "must be a mapping"),
        ("model_config", "{1: 2}", "not a field name: 1"),
        ("checksum", "{1: abc}", "map file names to sha256 digests"),
        ("checksum", "{w.bin: 1234}", "Quote each sha256"),
        ("checkpoint", '"a\\0b"', "NUL character"),
        ("tokenizer", "[x]", "must be a string"),
    ],
)
def test_fields_of_the_wrong_type(tmp_path: Path, field: str, value: str, match: str) -> None:
    text = GOOD + f"{field}: {value}\n---\nname: other\nbase: good\n"
    with pytest.raises(AssetCardError, match=match) as info:
        _resolve_all(_store(tmp_path / "c.yaml", text))
    assert info.value.name == "good"


def test_a_bad_card_leaves_the_others_usable(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.yaml", GOOD + "---\nname: bad\nbase: [good]\n")
    assert store.get_card("good").model_arch == "llama_tiny"
    with pytest.raises(AssetCardError, match="must be a string"):
        store.get_card("bad")


# --- base chains ---------------------------------------------------------------------------------


def _chain(length: int) -> str:
    cards = [GOOD.replace("good", "c0")]
    cards += [
        f"name: c{i}\nbase: c{i - 1}\nmodel_config: {{num_layers: {i}}}\n" for i in range(1, length)
    ]
    return "---\n".join(cards)


def test_long_base_chain_within_the_bound_resolves(tmp_path: Path) -> None:
    store = _store(tmp_path / "c.yaml", _chain(MAX_BASE_CHAIN))
    top = store.get_card(f"c{MAX_BASE_CHAIN - 1}")
    assert top.model_config == {"num_layers": MAX_BASE_CHAIN - 1}
    assert top.model_arch == "llama_tiny"
    assert store.get_card("c3").base == store.get_card("c2")  # memoised, compared by fields


def test_very_deep_base_chain(tmp_path: Path) -> None:
    # 1500 levels (past Python's recursion limit) used to raise RecursionError; now a bounded
    # loop and a clear error.
    error = _card_error(tmp_path / "c.yaml", _chain(1500))
    assert f"more than {MAX_BASE_CHAIN} base cards" in str(error)


@pytest.mark.parametrize(
    ("text", "cycle"),
    [
        ("name: a\nbase: a\n", "a -> a"),
        ("name: a\nbase: b\n---\nname: b\nbase: c\n---\nname: c\nbase: b\n", "b -> c -> b"),
    ],
)
def test_base_cycles_are_named(tmp_path: Path, text: str, cycle: str) -> None:
    assert f"inherits from itself through {cycle}" in str(_card_error(tmp_path / "c.yaml", text))


# --- the checksum memo ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "memo",
    [b"not json", b"[1, 2]", b'"text"', b'{"k": 5}', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe"],
)
def test_corrupt_checksum_memo_is_treated_as_absent(tmp_path: Path, memo: bytes) -> None:
    from lmhub.checkpoint import checksum

    memo_path = Path(os.environ["LMHUB_CACHE_DIR"]) / "checksums.json"
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    memo_path.write_bytes(memo)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"abc")
    checksum.verify_checksums(weights, hashlib.sha256(b"abc").hexdigest())
    assert hashlib.sha256(b"abc").hexdigest() in json.loads(memo_path.read_text()).values()


def test_checksum_memo_that_is_a_folder_is_ignored(tmp_path: Path) -> None:
    from lmhub.checkpoint import checksum

    (Path(os.environ["LMHUB_CACHE_DIR"]) / "checksums.json").mkdir(parents=True)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"abc")
    checksum.verify_checksums(weights, hashlib.sha256(b"abc").hexdigest())  # no error


# --- property tests ------------------------------------------------------------------------------

FRAGMENTS = [
    *(f"{f}: " for f in CARD_FIELDS),
    "chekpoint: ",
    "model_config: {num_layers: 1}",
    "model_family: llama",
    "model_arch: llama_tiny",
    "name: a",
    "name: b",
    "base: a",
    "base: b",
    "&x ",
    "*x",
    "<<: *x",
    "!!float ",
    "!!int ",
    "!!binary ",
    "!!set ",
    "!!timestamp ",
    "!!python/name:os.system ",
    "!!str ",
    "2024-13-45",
    "1" * 30,
    "[",
    "]",
    "{",
    "}",
    "- ",
    ", ",
    ": ",
    "? ",
    "---",
    "...",
    "null",
    "~",
    "'",
    '"',
    "\\0",
    "\t",
    "#",
    "|",
    ">",
    "\n",
    "\n  ",
]


@st.composite
def yaml_soup(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(FRAGMENTS),
                st.text(alphabet=string.ascii_letters + string.digits + "_./:", max_size=8),
            ),
            max_size=40,
        )
    )
    prefix = draw(st.sampled_from(["", "name: a\n", GOOD, GOOD + "---\nname: a\nbase: good\n"]))
    text = (prefix + "".join(parts)).encode()
    if draw(st.booleans()) and draw(st.booleans()):
        text += bytes([draw(st.integers(0x80, 0xFF))])  # sometimes not UTF-8
    return text


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["llama", "llama_tiny", "a", "b", "./w", "hf://org/x"]),
)
plain_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4)
    ),
    max_leaves=12,
)
config_keys = st.sampled_from(["num_layers", "model_dim", "rope_scaling", "rope_theta", "nope"])


GOOD_VALUES: dict[str, st.SearchStrategy[object]] = {
    "base": st.sampled_from(["a", "b", "c", "d"]),
    "model_family": st.just("llama"),
    "model_arch": st.just("llama_tiny"),
    "model_config": st.dictionaries(config_keys, plain_values),
    "checkpoint": st.sampled_from(["./w", "hf://o/r", "file:///x"]),
    "checksum": st.dictionaries(scalars, plain_values),
}


@st.composite
def card_docs(draw: st.DrawFn) -> dict[object, object]:
    # Mostly well-formed cards whose model_config is random, now and then a field of any type
    # or an unknown key (hypothesis favours small integers, so "rarely" is `== 7`).
    doc: dict[object, object] = {"name": draw(st.sampled_from(["a", "b", "c"]))}
    for key, good in GOOD_VALUES.items():
        if key in ("model_family", "model_arch") or draw(st.booleans()):
            doc[key] = draw(plain_values if draw(st.integers(0, 19)) == 7 else good)
    if draw(st.integers(0, 9)) == 7:
        doc[draw(st.sampled_from(["chekpoint", 1, None, "__class__"]))] = draw(plain_values)
    return doc


PROPERTY = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("card_fuzz")


def _check_store_on(path: Path, text: bytes) -> None:
    path.write_bytes(text)
    store = AssetStore([path], include_defaults=False)
    hub = lmhub.get_model_hub("llama")
    try:
        for card in store.iter_cards():
            _ = (card.model_config, card.checkpoint, card.checksum, card.base)
            if card.model_family == "llama":
                hub._store = store
                hub.get_model_config(card)
    except LmhubError as exc:
        assert len(str(exc)) < 2000
    finally:
        hub._store = None


@PROPERTY
@given(yaml_soup())
def test_random_yaml_text_gives_cards_or_lmhub_errors(fuzz_dir: Path, text: bytes) -> None:
    _check_store_on(fuzz_dir / "soup.yaml", text)


@settings(PROPERTY, max_examples=150)  # drawing nested documents is the slow part
@given(st.lists(card_docs(), min_size=1, max_size=3, unique_by=lambda doc: doc["name"]))
def test_random_card_documents_give_cards_or_lmhub_errors(
    fuzz_dir: Path, docs: list[dict[object, object]]
) -> None:
    import yaml

    _check_store_on(fuzz_dir / "docs.yaml", yaml.safe_dump_all(docs, sort_keys=False).encode())


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 3 * MAX_DEPTH))
def test_nesting_at_and_past_the_bound(fuzz_dir: Path, depth: int) -> None:
    # Lists at depths 3 .. depth + 2 (the card is 1, model_config 2): fine up to MAX_DEPTH.
    text = "name: deep\nmodel_config: {x: " + "[" * depth + "]" * depth + "}\n"
    path = fuzz_dir / "deep.yaml"
    path.write_text(text)
    store = AssetStore([path], include_defaults=False)
    if depth + 2 <= MAX_DEPTH:
        assert store.get_card("deep").model_config["x"] is not None
    else:
        with pytest.raises(AssetCardError, match="levels deep"):
            store.get_card("deep")
