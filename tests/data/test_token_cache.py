"""`tokenize_source`: ids cached on disk as a memmap, reused without calling the tokenizer,
re-made when the data, the tokenizer or the options change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmhub.data.sources import DataSource
from lmhub.data.token_cache import tokenize_source, tokenizer_fingerprint
from lmhub.data.tokenizers import ByteTokenizer, HfTokenizer
from lmhub.errors import DataError


class CountingTokenizer(ByteTokenizer):
    """The byte tokenizer, counting how many texts it encodes."""

    calls = 0

    def _encode(self, text: str) -> list[int]:
        CountingTokenizer.calls += 1
        return super()._encode(text)


@pytest.fixture
def counting() -> type[CountingTokenizer]:
    CountingTokenizer.calls = 0
    return CountingTokenizer


def test_second_run_reads_the_cache_without_tokenising(
    tmp_path: Path, counting: type[CountingTokenizer]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["hé", "", "abc"]))
    cache = tmp_path / "cache"
    first = tokenize_source(DataSource(corpus), counting(), cache_dir=cache)
    assert counting.calls == 3
    tok = ByteTokenizer()
    assert len(first) == 3 and first.kind == "text"
    assert first[0]["input_ids"].tolist() == tok.encode("hé", add_eos=True)
    assert first[1]["input_ids"].tolist() == [tok.eos_token_id]
    assert first.num_tokens == 4 + 1 + 4
    assert first.tokens.dtype == np.uint16

    second = tokenize_source(DataSource(corpus), counting(), cache_dir=cache)
    assert counting.calls == 3  # nothing encoded again
    assert isinstance(second.tokens, np.memmap)
    assert second.path == first.path
    assert np.array_equal(second.tokens, first.tokens)
    assert np.array_equal(second.offsets, first.offsets)
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no temporary left behind


def test_changes_to_data_tokenizer_or_options_make_a_new_entry(
    tmp_path: Path, counting: type[CountingTokenizer]
) -> None:
    corpus = tmp_path / "a.txt"
    corpus.write_text("some text")
    cache = tmp_path / "cache"
    base = tokenize_source(DataSource(corpus), counting(), cache_dir=cache).path
    # The same contents elsewhere hit the same entry.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "a.txt").write_text("some text")
    assert tokenize_source(DataSource(moved / "a.txt"), counting(), cache_dir=cache).path == base
    corpus.write_text("other text")
    assert tokenize_source(DataSource(corpus), counting(), cache_dir=cache).path != base
    corpus.write_text("some text")
    with_bos = tokenize_source(DataSource(corpus), counting(), cache_dir=cache, add_bos=True)
    assert with_bos.path != base and with_bos[0]["input_ids"][0] == 256
    assert tokenize_source(DataSource(corpus), ByteTokenizer(), cache_dir=cache).path != base
    assert tokenizer_fingerprint(ByteTokenizer()) != tokenizer_fingerprint(counting())


def test_seq2seq_examples_keep_prompt_and_target_apart(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "ab", "target": "c"}\n{"prompt": "", "target": "de"}\n')
    tokenized = tokenize_source(
        DataSource(data), ByteTokenizer(), cache_dir=tmp_path / "c", add_bos=True
    )
    assert tokenized.kind == "seq2seq"
    assert tokenized[0]["prompt_ids"].tolist() == [256, 97, 98]
    assert tokenized[0]["target_ids"].tolist() == [99, 257]
    assert tokenized[1]["prompt_ids"].tolist() == [256]
    assert tokenized[1]["target_ids"].tolist() == [100, 101, 257]


def test_a_bad_line_leaves_no_cache_entry(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "ok"}\n{"nope": 1}\n')
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="Line 2"):
        tokenize_source(DataSource(data), ByteTokenizer(), cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_default_cache_dir_is_under_lmhub_cache(tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_text("x")
    entry = tokenize_source(DataSource(data), ByteTokenizer()).path
    assert entry.parent.name == "tokens"  # $LMHUB_CACHE_DIR/tokens, set per test in conftest


def test_examples_are_indexed_in_range_only(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "a"}\n{"text": "bc"}\n')
    tokenized = tokenize_source(DataSource(data), ByteTokenizer(), cache_dir=tmp_path / "c")
    assert [e["input_ids"].tolist() for e in tokenized] == [[97, 257], [98, 99, 257]]
    for index in (-1, 2):
        with pytest.raises(IndexError, match="out of range for 2 examples"):
            tokenized[index]


def _word_tokenizer(folder: Path, words: list[str]) -> HfTokenizer:
    """A tiny tokenizer.json (word level, split on spaces), written in-test."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", *words])}
    rust = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    rust.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder.mkdir()
    rust.save(str(folder / "tokenizer.json"))
    return HfTokenizer(folder / "tokenizer.json")


def test_tokenizer_files_key_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_text("the cat sat")
    one = _word_tokenizer(tmp_path / "one", ["the", "cat", "sat"])
    same = _word_tokenizer(tmp_path / "same", ["the", "cat", "sat"])
    other = _word_tokenizer(tmp_path / "other", ["the", "sat", "cat"])  # same size, other ids
    assert tokenizer_fingerprint(one) == tokenizer_fingerprint(same)
    assert tokenizer_fingerprint(one) != tokenizer_fingerprint(other)
    cache = tmp_path / "cache"
    first = tokenize_source(DataSource(data), one, cache_dir=cache)
    assert first[0]["input_ids"].tolist() == [1, 2, 3]
    assert tokenize_source(DataSource(data), same, cache_dir=cache).path == first.path
    moved = tokenize_source(DataSource(data), other, cache_dir=cache)
    assert moved.path != first.path and moved[0]["input_ids"].tolist() == [1, 3, 2]


def test_no_progress_output_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "a.txt"
    data.write_text("text")
    tokenize_source(DataSource(data), ByteTokenizer(), cache_dir=tmp_path / "c", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
