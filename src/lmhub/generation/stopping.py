"""When a sequence is done: an end-of-sequence token, a stop token sequence or a stop string.

The tokens that end a sequence are kept in the output (like EOS); everything after is padding.
Stop sequences and strings are looked for in the generated tokens only, never in the prompt.

Example:
    >>> stopper = StopCriteria(eos_token_id=2, stop=[[5, 6]], batch_size=1)
    >>> [stopper.update(torch.tensor([t])).item() for t in (5, 6)]
    [False, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lmhub.errors import GenerationError

StopArg = str | Sequence[int] | Sequence[str | Sequence[int]] | None
"""A stop string, a stop token sequence, or a list mixing both."""


def normalize_stop(stop: StopArg) -> tuple[list[str], list[list[int]]]:
    """Split ``stop`` into (strings, token sequences); a flat list of ints is one sequence.

    Example:
        >>> normalize_stop(["\\n\\n", [13, 13], "###"])
        (['\\n\\n', '###'], [[13, 13]])
    """
    if stop is None:
        return [], []
    if not isinstance(stop, str | Sequence | torch.Tensor):
        raise GenerationError(
            f"stop is {stop!r}, which is neither a string nor a list of strings or token ids. "
            "Pass a string, a list of ids, or a list of those.",
            field="stop",
            value=stop,
        )
    if isinstance(stop, str):
        stop = [stop]
    elif stop and all(_is_int(t) for t in stop):
        stop = [stop]  # type: ignore[list-item]
    strings: list[str] = []
    sequences: list[list[int]] = []
    for item in stop:
        if isinstance(item, str):
            if not item:
                raise GenerationError(
                    "A stop string is empty; it would stop at once. Remove it.", field="stop"
                )
            strings.append(item)
        elif isinstance(item, Sequence | torch.Tensor) and len(item) and all(map(_is_int, item)):
            sequences.append([int(t) for t in item])
        else:
            raise GenerationError(
                f"The stop entry {item!r} is neither a string nor a non-empty list of token "
                "ids. Pass a string, a list of ids, or a list of those.",
                field="stop",
                value=item,
            )
    return strings, sequences


def _is_int(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, torch.Tensor) and value.ndim == 0)


def eos_ids(eos_token_id: int | Sequence[int] | None) -> list[int]:
    """Return ``eos_token_id`` as a list (empty for ``None``)."""
    if eos_token_id is None:
        return []
    if isinstance(eos_token_id, int):
        return [eos_token_id]
    return [int(t) for t in eos_token_id]


class StopCriteria:
    """Tracks which rows of a batch are done, one generated token at a time.

    Args:
        eos_token_id: token id(s) that end a sequence.
        stop: stop strings and/or token sequences (see :func:`normalize_stop`).
        tokenizer: decodes the generated tokens to look for stop strings (needed only then).
        batch_size: the number of rows.
        device: where the token tensors live.
    """

    def __init__(
        self,
        *,
        eos_token_id: int | Sequence[int] | None = None,
        stop: StopArg = None,
        tokenizer: Any = None,
        batch_size: int,
        device: torch.device | str | None = None,
    ) -> None:
        self.strings, self.sequences = normalize_stop(stop)
        if self.strings and tokenizer is None:
            raise GenerationError(
                f"Stop strings ({', '.join(repr(s) for s in self.strings)}) need a tokenizer to "
                "decode the generated tokens. Pass tokenizer=..., or give the stop as token ids.",
                field="stop",
            )
        eos = eos_ids(eos_token_id)
        self.eos = torch.tensor(eos, dtype=torch.long, device=device) if eos else None
        self.done = torch.zeros(batch_size, dtype=torch.bool, device=device)
        """Which rows have stopped."""
        self._tails: list[list[int]] = [[] for _ in range(batch_size)]
        self._keep = max((len(s) for s in self.sequences), default=0)
        self._decoders: list[Any] = []
        self._texts = [""] * batch_size
        self._text_keep = max((len(s) for s in self.strings), default=0)
        if self.strings:
            from lmhub.data.tokenizers import IncrementalDecoder

            # Special tokens are kept, so that a stop string may name one ("<|im_end|>").
            self._decoders = [
                IncrementalDecoder(tokenizer, skip_special_tokens=False) for _ in range(batch_size)
            ]

    @property
    def active(self) -> bool:
        """Whether anything can stop a sequence early."""
        return self.eos is not None or bool(self.sequences) or bool(self.strings)

    def update(self, tokens: torch.Tensor) -> torch.Tensor:
        """Take the new tokens ``[batch]``; return the rows that have stopped (``done``)."""
        if self.eos is not None:
            self.done |= torch.isin(tokens, self.eos)
        if self.sequences or self.strings:
            was_done = self.done.tolist()
            hits = [
                not done and self._check_row(i, t)
                for i, (t, done) in enumerate(zip(tokens.tolist(), was_done, strict=True))
            ]
            self.done |= torch.tensor(hits, dtype=torch.bool, device=self.done.device)
        return self.done

    def _check_row(self, row: int, token: int) -> bool:
        hit = False
        if self.sequences:
            tail = self._tails[row]
            tail.append(token)
            del tail[: -self._keep]
            hit = any(tail[-len(s) :] == s for s in self.sequences)
        if self.strings:
            delta = self._decoders[row].push(token)
            if delta:
                # Look in the new text plus just enough old text for a stop string to span both.
                window = self._texts[row][-(self._text_keep - 1) :] if self._text_keep > 1 else ""
                text = window + delta
                hit = hit or any(s in text for s in self.strings)
                self._texts[row] = text[-self._text_keep :]
        return hit
