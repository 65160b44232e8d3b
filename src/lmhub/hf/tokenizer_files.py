"""Write an lmhub tokenizer as files ``transformers.AutoTokenizer`` loads, with its chat template.

* tokenizers run by the ``tokenizers`` library (``tokenizer.json``, GPT-2 BPE) are written as the
  same ``tokenizer.json``, so ids match exactly;
* :class:`~lmhub.data.tokenizers.ByteTokenizer` becomes an equivalent byte-level
  ``tokenizer.json`` (ids 0-255 are bytes, then BOS, EOS, PAD);
* SentencePiece models are copied as ``tokenizer.model`` for transformers' ``LlamaTokenizer``,
  which converts them on load (that needs ``protobuf``; it suits Llama-style BPE models, and
  transformers splits runs of spaces slightly differently from SentencePiece).

The chat template goes to ``chat_template.jinja``; ``tokenizer_config.json`` names the special
tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmhub.data.tokenizers import ByteTokenizer, SentencePieceTokenizer, Tokenizer
from lmhub.errors import TokenizerError

__all__ = ["byte_level_tokenizer_json", "write_tokenizer_files"]


def _bytes_to_chars() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (GPT-2's ``ByteLevel``).

    Printable Latin-1 bytes stand for themselves; the other 68 get the code points from 256 up,
    in byte order.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_level_tokenizer_json(tokenizer: ByteTokenizer) -> str:
    """Return a ``tokenizer.json`` that encodes and decodes exactly like ``tokenizer``.

    Example:
        >>> from tokenizers import Tokenizer
        >>> tok = Tokenizer.from_str(byte_level_tokenizer_json(ByteTokenizer()))
        >>> tok.encode("hé").ids
        [104, 195, 169]
    """
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {char: byte for byte, char in _bytes_to_chars().items()}
    rust = RustTokenizer(models.BPE(vocab=vocab, merges=[]))
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    rust.decoder = decoders.ByteLevel()
    specials = sorted(
        (i, t)
        for i, t in (
            (tokenizer.bos_token_id, tokenizer.bos_token),
            (tokenizer.eos_token_id, tokenizer.eos_token),
            (tokenizer.pad_token_id, tokenizer.pad_token),
        )
        if t is not None
    )
    rust.add_special_tokens([t for _, t in specials])
    for token_id, token in specials:
        if rust.token_to_id(token) != token_id:
            raise TokenizerError(
                f"The byte tokenizer's {token!r} has id {token_id}, which a tokenizer.json cannot "
                "reproduce. Use special token ids 256, 257, 258 in that order."
            )
    return rust.to_str(pretty=True)


def write_tokenizer_files(
    tokenizer: Tokenizer, directory: Path, *, model_max_length: int | None = None
) -> list[str]:
    """Write ``tokenizer`` into ``directory``; return the file names written.

    Raises:
        TokenizerError: for a tokenizer class that has no file form here.
    """
    config: dict[str, Any] = {}
    written: list[str] = []
    rust = getattr(tokenizer, "_tok", None)  # lmhub's tokenizers-library classes keep it here
    if isinstance(tokenizer, ByteTokenizer):
        (directory / "tokenizer.json").write_text(
            byte_level_tokenizer_json(tokenizer), encoding="utf-8"
        )
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        written.append("tokenizer.json")
    elif rust is not None and callable(getattr(rust, "to_str", None)):
        (directory / "tokenizer.json").write_text(rust.to_str(pretty=True), encoding="utf-8")
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        written.append("tokenizer.json")
    elif isinstance(tokenizer, SentencePieceTokenizer):
        (directory / "tokenizer.model").write_bytes(tokenizer._sp.serialized_model_proto())
        config["tokenizer_class"] = "LlamaTokenizer"
        config["add_bos_token"] = tokenizer.add_bos_token
        config["add_eos_token"] = tokenizer.add_eos_token
        written.append("tokenizer.model")
    else:
        raise TokenizerError(
            f"lmhub cannot write a {type(tokenizer).__name__} as Hugging Face tokenizer files. "
            "Export without the tokenizer, or use a tokenizer.json, SentencePiece, GPT-2 BPE or "
            "byte tokenizer."
        )
    for kind in ("bos", "eos", "pad"):
        token = getattr(tokenizer, f"{kind}_token")
        if token is not None:
            config[f"{kind}_token"] = token
    if model_max_length is not None:
        config["model_max_length"] = model_max_length
    config["clean_up_tokenization_spaces"] = False
    (directory / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2) + "\n", encoding="utf-8"
    )
    written.append("tokenizer_config.json")
    if tokenizer.chat_template is not None:
        (directory / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
        written.append("chat_template.jinja")
    return written
