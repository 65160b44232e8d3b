"""Tokenizers behind one small interface: tokenizer.json, SentencePiece, GPT-2 BPE, and raw bytes.

All of them follow the same rules, whatever library does the work:

* ``encode`` adds no special tokens unless asked (``add_bos``/``add_eos``); ``add_bos_token`` and
  ``add_eos_token`` say what the model was trained with.
* The text of a special token (``<s>``, ``<|endoftext|>``, ...) inside the input is encoded as
  that token's id, as Hugging Face tokenizers do, so ``encode(apply_chat_template(...))`` works.
* ``decode`` drops special tokens unless ``skip_special_tokens=False``.

The ``tokenizers`` and ``sentencepiece`` libraries are imported only by the classes that use
them, so importing this module is cheap.

Example:
    >>> tok = load_tokenizer("byte")
    >>> tok.encode("hé", add_bos=True)
    [256, 104, 195, 169]
    >>> tok.decode([256, 104, 195, 169])
    'hé'
"""

from __future__ import annotations

import abc
import operator
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmhub.data.chat_template import load_chat_template, read_json_object, render_chat_template
from lmhub.errors import TokenizerError

if TYPE_CHECKING:
    import tokenizers

__all__ = [
    "ByteTokenizer",
    "Gpt2BpeTokenizer",
    "HfTokenizer",
    "IncrementalDecoder",
    "SentencePieceTokenizer",
    "Tokenizer",
    "load_tokenizer",
]

_LOOKED_FOR = "tokenizer.json, tokenizer.model, or vocab.json with merges.txt"


class Tokenizer(abc.ABC):
    """The interface every lmhub tokenizer implements.

    Subclasses set the special-token attributes in ``__init__`` and implement ``vocab_size``,
    ``_encode`` (plain text to ids) and ``_decode``; this class adds the BOS/EOS handling, id
    checks and chat templates on top.
    """

    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    #: Jinja chat template used by :meth:`apply_chat_template`; ``None`` when there is none.
    chat_template: str | None = None
    #: Whether the model was trained with BOS (EOS) at the start (end) of each sequence.
    add_bos_token: bool = False
    add_eos_token: bool = False

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included (ids are ``0 .. vocab_size - 1``)."""

    @abc.abstractmethod
    def _encode(self, text: str) -> list[int]:
        """Encode ``text`` without adding BOS/EOS."""

    @abc.abstractmethod
    def _decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        """Decode ids already checked to be in range."""

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Turn ``text`` into token ids, with BOS/EOS only when asked.

        Example:
            >>> ByteTokenizer().encode("hi", add_eos=True)
            [104, 105, 257]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, not a {type(text).__name__}.")
        return self._add_bos_eos(self._encode(text), add_bos, add_eos)

    def encode_batch(
        self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        """Encode several texts; the same as ``[encode(t, ...) for t in texts]``, maybe faster."""
        return [self.encode(text, add_bos=add_bos, add_eos=add_eos) for text in texts]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """Turn token ids (a list, tuple, or 1-D tensor/array of ints) back into text.

        Example:
            >>> ByteTokenizer().decode([256, 104, 105, 257])
            'hi'
        """
        return self._decode(self._check_ids(ids), skip_special_tokens)

    def apply_chat_template(
        self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """Render :attr:`chat_template` for ``messages``, with this tokenizer's special tokens.

        ``kwargs`` reach the template as variables (see
        :func:`~lmhub.data.chat_template.render_chat_template`). The result is text: encode it
        with ``encode(...)`` (the template normally writes BOS itself, so leave ``add_bos`` off).

        Example:
            >>> tok = ByteTokenizer(chat_template="{{ bos_token }}{{ messages[0].content }}")
            >>> tok.apply_chat_template([{"role": "user", "content": "hi"}])
            '<|bos|>hi'
        """
        if self.chat_template is None:
            raise TokenizerError(
                f"This {type(self).__name__} has no chat template. Set its `chat_template` "
                "attribute, e.g. to load_chat_template(path), or format the prompt yourself."
            )
        variables: dict[str, Any] = {
            "bos_token": self.bos_token or "",
            "eos_token": self.eos_token or "",
        }
        if self.pad_token is not None:
            variables["pad_token"] = self.pad_token
        variables.update(kwargs)
        return render_chat_template(
            self.chat_template, messages, add_generation_prompt=add_generation_prompt, **variables
        )

    @property
    def special_token_ids(self) -> frozenset[int]:
        """The ids of the BOS, EOS and PAD tokens that exist."""
        ids = (self.bos_token_id, self.eos_token_id, self.pad_token_id)
        return frozenset(i for i in ids if i is not None)

    def _add_bos_eos(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        if add_bos:
            ids.insert(0, self._required_id("bos"))
        if add_eos:
            ids.append(self._required_id("eos"))
        return ids

    def _required_id(self, kind: str) -> int:
        token_id: int | None = getattr(self, f"{kind}_token_id")
        if token_id is None:
            raise TokenizerError(
                f"This {type(self).__name__} has no {kind.upper()} token, so add_{kind}=True "
                f"cannot be honoured. Leave add_{kind} off, or use a tokenizer that defines one."
            )
        return token_id

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        if hasattr(ids, "tolist"):  # torch tensors and numpy arrays: one fast conversion
            ids = ids.tolist()
        try:
            checked = [operator.index(i) for i in ids]
        except TypeError as exc:
            raise TokenizerError(
                f"Token ids must be integers ({exc}). Pass a list or 1-D tensor of ints."
            ) from exc
        if checked and (min(checked) < 0 or max(checked) >= self.vocab_size):
            bad = next(i for i in checked if not 0 <= i < self.vocab_size)
            raise TokenizerError(
                f"Token id {bad} is out of range for this tokenizer, whose ids are 0 to "
                f"{self.vocab_size - 1}. Check that the ids come from a model that uses this "
                "tokenizer."
            )
        return checked


class _RustTokenizer(Tokenizer):
    """Shared code for tokenizers run by the Hugging Face ``tokenizers`` library."""

    _tok: tokenizers.Tokenizer

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(
        self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        # The Rust library encodes a batch on all cores.
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [self._add_bos_eos(e.ids, add_bos, add_eos) for e in encodings]

    def _decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def _token_id(self, token: str | None, what: str, path: Path) -> int | None:
        if token is None:
            return None
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise TokenizerError(
                f"The {what} {token!r} for the tokenizer at {path} is not in its vocabulary. "
                f"Fix the {what} in tokenizer_config.json, or add the token to the tokenizer.",
                path=path,
            )
        return token_id


class HfTokenizer(_RustTokenizer):
    """A Hugging Face ``tokenizer.json``, run by the ``tokenizers`` library.

    Reads ``tokenizer_config.json`` (and ``special_tokens_map.json``) beside it when present for
    the BOS/EOS/PAD tokens and ``add_bos_token``/``add_eos_token``, and the chat template from
    ``chat_template.jinja``, ``chat_template.json`` or ``tokenizer_config.json``. Without a
    config, ``add_bos_token`` says whether the file's post-processor adds BOS. Pass
    ``bos_token``/``eos_token``/``pad_token`` to override the config.

    Example:
        >>> tok = HfTokenizer("checkpoints/llama-3-8b/tokenizer.json")  # doctest: +SKIP
        >>> tok.encode("Hello", add_bos=tok.add_bos_token)  # doctest: +SKIP
        [128000, 9906]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
    ) -> None:
        import tokenizers

        path = Path(path)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise TokenizerError(
                f"There is no tokenizer.json at {file}. Pass the path of a Hugging Face "
                "tokenizer.json file or of the directory holding it.",
                path=file,
            )
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(file))
        except Exception as exc:  # the Rust library raises plain Exception
            raise TokenizerError(
                f"Could not read the tokenizer file {file}: {exc}. Check that it is a complete "
                "tokenizer.json written by the Hugging Face `tokenizers` library.",
                path=file,
            ) from exc
        self._vocab_size = self._tok.get_vocab_size(with_added_tokens=True)

        config = _read_tokenizer_config(file.parent)
        self.bos_token = bos_token or _config_token(config, "bos_token", file.parent)
        self.eos_token = eos_token or _config_token(config, "eos_token", file.parent)
        self.pad_token = pad_token or _config_token(config, "pad_token", file.parent)
        self.bos_token_id = self._token_id(self.bos_token, "bos_token", file)
        self.eos_token_id = self._token_id(self.eos_token, "eos_token", file)
        self.pad_token_id = self._token_id(self.pad_token, "pad_token", file)

        # What the post-processor adds around a sequence tells what the model was trained with;
        # an explicit add_bos_token/add_eos_token in the config overrides it.
        framed = self._tok.encode("", add_special_tokens=True).ids
        adds_bos = bool(framed) and framed[0] == self.bos_token_id
        adds_eos = len(framed) > int(adds_bos) and framed[-1] == self.eos_token_id
        self.add_bos_token = _config_bool(config, "add_bos_token", adds_bos)
        self.add_eos_token = _config_bool(config, "add_eos_token", adds_eos)
        self.chat_template = load_chat_template(file.parent)


class Gpt2BpeTokenizer(_RustTokenizer):
    """GPT-2's byte-level BPE from ``vocab.json`` and ``merges.txt``; BOS = EOS = ``<|endoftext|>``.

    The merges file may start with a ``#version`` line or not. The tokenizer is built with the
    ``tokenizers`` library, so it gives the same ids as GPT-2's own encoder.

    Example:
        >>> tok = Gpt2BpeTokenizer("gpt2/vocab.json", "gpt2/merges.txt")  # doctest: +SKIP
        >>> tok.encode("Hello world")  # doctest: +SKIP
        [15496, 995]
    """

    END_OF_TEXT = "<|endoftext|>"

    def __init__(
        self,
        vocab_path: str | os.PathLike[str],
        merges_path: str | os.PathLike[str],
        *,
        chat_template: str | None = None,
    ) -> None:
        from tokenizers import Tokenizer as RustTokenizer
        from tokenizers import decoders, models, pre_tokenizers

        vocab_path, merges_path = Path(vocab_path), Path(merges_path)
        vocab = read_json_object(vocab_path)
        if not all(isinstance(i, int) for i in vocab.values()):
            raise TokenizerError(
                f"{vocab_path} is not a GPT-2 vocab.json: it must map each token to an integer id.",
                path=vocab_path,
            )
        if self.END_OF_TEXT not in vocab:
            raise TokenizerError(
                f"{vocab_path} has no {self.END_OF_TEXT} token, so it is not a GPT-2 vocabulary. "
                "Check that you passed the right vocab.json.",
                path=vocab_path,
            )
        merges = _read_merges(merges_path)
        try:
            tok = RustTokenizer(models.BPE(vocab=vocab, merges=merges))
        except Exception as exc:
            raise TokenizerError(
                f"Could not build a BPE tokenizer from {vocab_path} and {merges_path}: {exc}. "
                "Check that the two files belong together.",
                path=merges_path,
            ) from exc
        # GPT-2 splits text with its regex, then maps each byte to a printable character.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([self.END_OF_TEXT])  # already in the vocab: keeps its id
        self._tok = tok
        self._vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.bos_token = self.eos_token = self.END_OF_TEXT
        self.bos_token_id = self.eos_token_id = vocab[self.END_OF_TEXT]
        self.chat_template = chat_template


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece ``.model`` file (Llama 2, Mistral, Gemma, T5, ...).

    BOS/EOS/PAD come from the model; ``add_bos_token`` is true when the model has a BOS token,
    as SentencePiece models are trained with it. The text between special tokens is encoded
    piece by piece, each with SentencePiece's leading-space rule, as Meta's Llama 2 reference
    code does for ``<s>[INST] ...``.

    Example:
        >>> tok = SentencePieceTokenizer("llama2/tokenizer.model")  # doctest: +SKIP
        >>> tok.encode("Hello world", add_bos=True)  # doctest: +SKIP
        [1, 15043, 3186]
    """

    def __init__(self, path: str | os.PathLike[str], *, chat_template: str | None = None) -> None:
        import sentencepiece

        path = Path(path)
        if not path.is_file():
            raise TokenizerError(
                f"There is no SentencePiece model at {path}. Pass the path of a *.model file.",
                path=path,
            )
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise TokenizerError(
                f"Could not read the SentencePiece model {path}: {exc}. Check that it is a "
                "complete SentencePiece .model file.",
                path=path,
            ) from exc
        self._vocab_size = self._sp.get_piece_size()
        for kind, token_id in (
            ("bos", self._sp.bos_id()),
            ("eos", self._sp.eos_id()),
            ("pad", self._sp.pad_id()),
        ):
            if token_id >= 0:  # SentencePiece says "none" with -1
                setattr(self, f"{kind}_token_id", token_id)
                setattr(self, f"{kind}_token", self._sp.id_to_piece(token_id))
        self._special_ids = {self._sp.id_to_piece(i): i for i in sorted(self.special_token_ids)}
        self._special_re = _alternation(self._special_ids)
        self.add_bos_token = self.bos_token_id is not None
        self.chat_template = chat_template

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for index, part in enumerate(_split(text, self._special_re)):
            if index % 2:
                ids.append(self._special_ids[part])
            elif part:
                ids.extend(self._sp.encode(part))
        return ids

    def _decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        specials = self.special_token_ids
        if skip_special_tokens:
            return self._sp.decode([i for i in ids if i not in specials])
        # SentencePiece drops control tokens when decoding, so write their text in ourselves.
        parts: list[str] = []
        start = 0
        for index, token_id in enumerate(ids):
            if token_id in specials:
                parts += [self._sp.decode(ids[start:index]), self._sp.id_to_piece(token_id)]
                start = index + 1
        parts.append(self._sp.decode(ids[start:]))
        return "".join(parts)


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as tokens; needs no files. Ids 0-255 are bytes, then BOS, EOS and PAD.

    Handy for tests and byte-level models. Invalid UTF-8 decodes to U+FFFD.

    Example:
        >>> tok = ByteTokenizer()
        >>> tok.vocab_size, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
        (259, 256, 257, 258)
        >>> tok.decode(tok.encode("<|bos|>€"), skip_special_tokens=False)
        '<|bos|>€'
    """

    def __init__(self, *, chat_template: str | None = None) -> None:
        self.bos_token, self.eos_token, self.pad_token = "<|bos|>", "<|eos|>", "<|pad|>"
        self.bos_token_id, self.eos_token_id, self.pad_token_id = 256, 257, 258
        self._special_ids = {"<|bos|>": 256, "<|eos|>": 257, "<|pad|>": 258}
        self._special_re = _alternation(self._special_ids)
        self._special_text = {i: text for text, i in self._special_ids.items()}
        self.chat_template = chat_template

    @property
    def vocab_size(self) -> int:
        return 259

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for index, part in enumerate(_split(text, self._special_re)):
            if index % 2:
                ids.append(self._special_ids[part])
            else:
                ids.extend(part.encode("utf-8"))
        return ids

    def _decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        if skip_special_tokens:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        parts: list[str] = []
        run = bytearray()
        for token_id in ids:
            if token_id < 256:
                run.append(token_id)
            else:
                parts += [run.decode("utf-8", errors="replace"), self._special_text[token_id]]
                run.clear()
        parts.append(run.decode("utf-8", errors="replace"))
        return "".join(parts)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Load the tokenizer at ``path``, picking the class from the files found.

    * ``"byte"``: a :class:`ByteTokenizer`.
    * a file: ``*.model`` is SentencePiece, ``vocab.json`` (with ``merges.txt`` beside it) is
      GPT-2 BPE, any other ``*.json`` is a Hugging Face ``tokenizer.json``.
    * a directory: ``tokenizer.json``, else ``tokenizer.model``, else ``vocab.json`` +
      ``merges.txt``.

    A chat template in the same directory (``chat_template.jinja``, ``chat_template.json`` or
    ``tokenizer_config.json``) is attached to the tokenizer.

    Example:
        >>> load_tokenizer("byte").vocab_size
        259
        >>> load_tokenizer("checkpoints/llama-2-7b")  # doctest: +SKIP
        <lmhub.data.tokenizers.HfTokenizer object at ...>
    """
    if isinstance(path, str) and path == "byte":
        return ByteTokenizer()
    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return HfTokenizer(path / "tokenizer.json")
        if (path / "tokenizer.model").is_file():
            return SentencePieceTokenizer(
                path / "tokenizer.model", chat_template=load_chat_template(path)
            )
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            return Gpt2BpeTokenizer(
                path / "vocab.json", path / "merges.txt", chat_template=load_chat_template(path)
            )
        raise TokenizerError(
            f"Found no tokenizer in the directory {path}: looked for {_LOOKED_FOR}. Pass a "
            "directory holding one of these, or 'byte' for the byte-level tokenizer.",
            path=path,
        )
    if not path.is_file():
        raise TokenizerError(
            f"There is no tokenizer at {path}: the path does not exist. Pass a directory holding "
            f"{_LOOKED_FOR}; a *.model or tokenizer.json file; or 'byte'.",
            path=path,
        )
    if path.suffix == ".model":
        return SentencePieceTokenizer(path, chat_template=load_chat_template(path.parent))
    if path.name in ("vocab.json", "merges.txt"):
        vocab, merges = path.with_name("vocab.json"), path.with_name("merges.txt")
        if not (vocab.is_file() and merges.is_file()):
            missing = merges if path == vocab else vocab
            raise TokenizerError(
                f"{path} is half of a GPT-2 tokenizer, but {missing.name} is not beside it. A "
                "GPT-2 tokenizer needs vocab.json and merges.txt side by side.",
                path=path,
            )
        return Gpt2BpeTokenizer(vocab, merges, chat_template=load_chat_template(path.parent))
    if path.suffix == ".json":
        return HfTokenizer(path)
    raise TokenizerError(
        f"{path} is not a tokenizer file lmhub can read: looked for {_LOOKED_FOR}. Pass one of "
        "those files, the directory holding them, or 'byte'.",
        path=path,
    )


class IncrementalDecoder:
    """Turns a stream of token ids into text deltas, for streaming output.

    Decoding one token at a time goes wrong in two ways: a character split over several tokens
    (byte-level BPE, SentencePiece byte fallback) shows up as U+FFFD, and SentencePiece-style
    tokenizers drop the leading space of the first token decoded. So each ``push`` decodes a
    short window of recent tokens twice, with and without the new ones, and returns only the
    text that grew; text ending in an incomplete character is held back until it completes or
    :meth:`flush` is called. The deltas always add up to ``tokenizer.decode(all_ids)``.

    Example:
        >>> dec = IncrementalDecoder(ByteTokenizer())
        >>> [dec.push(b) for b in "€!".encode()]
        ['', '', '€', '!']
        >>> dec.flush()
        ''
    """

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._reset()

    def push(self, token_id: int) -> str:
        """Add one token id and return the new text it completes (often ``""``)."""
        self._ids.append(token_id)
        try:
            prefix = self._decode(self._ids[: self._read])
            text = self._decode(self._ids)
        except TokenizerError:
            self._ids.pop()  # a bad id must not poison the rest of the stream
            raise
        if len(text) <= len(prefix) or text.endswith("\ufffd"):
            return ""  # nothing new yet, or a character still incomplete
        # The window slides forward: keep the tokens just emitted as context for the next ones.
        self._ids = self._ids[self._read :]
        self._read = len(self._ids)
        return text[len(prefix) :]

    def flush(self) -> str:
        """End the stream: return any held-back text (as ``decode`` would) and reset."""
        prefix = self._decode(self._ids[: self._read])
        text = self._decode(self._ids)
        self._reset()
        return text[len(prefix) :]

    def _reset(self) -> None:
        # _ids is the window: the tokens already emitted (the first _read of them), then the
        # tokens whose text is still held back.
        self._ids: list[int] = []
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens)


def _alternation(specials: dict[str, int]) -> re.Pattern[str] | None:
    """A regex with one capturing group that matches any special token's text."""
    if not specials:
        return None
    # Longest first, so a token whose text starts with another's is matched whole.
    texts = sorted(specials, key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, texts)) + ")")


def _split(text: str, pattern: re.Pattern[str] | None) -> list[str]:
    """Split ``text`` into plain text (even indices) and special-token text (odd indices)."""
    return [text] if pattern is None else pattern.split(text)


def _read_merges(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenizerError(
            f"Could not read the BPE merges file {path}: {exc}. Check the path.", path=path
        ) from exc
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        # Split on "\n" only: str.splitlines would also break on characters inside tokens.
        line = line.rstrip("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2 or not all(pair):
            raise TokenizerError(
                f"Line {number} of the merges file {path} is {line!r}, not two tokens separated "
                "by one space. Check that this is a BPE merges.txt file.",
                path=path,
            )
        merges.append((pair[0], pair[1]))
    return merges


def _read_tokenizer_config(directory: Path) -> dict[str, Any]:
    """tokenizer_config.json, with special_tokens_map.json filling in missing tokens."""
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (directory / name).is_file():
            config.update(
                {k: v for k, v in read_json_object(directory / name).items() if v is not None}
            )
    return config


def _config_token(config: dict[str, Any], key: str, directory: Path) -> str | None:
    value = config.get(key)
    if isinstance(value, dict):  # a serialized AddedToken: {"content": "<s>", ...}
        value = value.get("content")
    if value is None or isinstance(value, str):
        return value
    raise TokenizerError(
        f"The {key} in the tokenizer config in {directory} is a {type(value).__name__}; it must "
        "be the token's text. Fix tokenizer_config.json.",
        path=directory,
    )


def _config_bool(config: dict[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    return value if isinstance(value, bool) else default
