"""Packing documents into fixed-length rows, with the document boundaries kept.

The documents of a tokenized source lie end to end in one token array; row ``i`` of the packed
data is simply tokens ``[i * seq_len, (i + 1) * seq_len)`` of it, so packing wastes no token and
needs no copy. A document may span rows. Each row carries, besides its ids:

* ``position_ids`` that restart at 0 where a document (or the part of one in this row) starts;
* ``document_ids``, the row-local index of each token's document (-1 for the padding of the
  last row), from which :func:`document_causal_mask` builds the block-diagonal causal mask that
  keeps attention inside a document.

With both, a packed row gives every document the same outputs as running it alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lmhub.nn.masks import causal_mask

__all__ = ["PackedDataset", "document_causal_mask", "pack_row"]


def document_causal_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """Return the boolean mask ``[batch, 1, seq, seq]`` letting a token see the earlier tokens
    of its own document only (True = may attend).

    It is :func:`lmhub.nn.masks.causal_mask` restricted to equal document ids; padding (id -1)
    sees only padding, so no row is empty.

    Example:
        >>> document_causal_mask(torch.tensor([[0, 0, 1]]))[0, 0]
        tensor([[ True, False, False],
                [ True,  True, False],
                [False, False,  True]])
    """
    seq = document_ids.shape[-1]
    same = document_ids[:, :, None] == document_ids[:, None, :]
    return (causal_mask(seq, seq, device=document_ids.device) & same)[:, None]


def pack_row(
    tokens: np.ndarray, doc_offsets: np.ndarray, start: int, seq_len: int, pad_token_id: int
) -> dict[str, np.ndarray]:
    """Return the packed row of ``seq_len`` tokens starting at token ``start``.

    ``tokens`` holds the documents end to end and ``doc_offsets`` (``[num_docs + 1]``, from 0 to
    ``len(tokens)``) where each starts. A row running past the end is padded with
    ``pad_token_id`` (position 0, document -1).
    """
    stop = min(start + seq_len, len(tokens))
    index = np.arange(start, stop)
    doc = np.searchsorted(doc_offsets, index, side="right") - 1
    # A document that began in an earlier row restarts its positions at this row's start.
    doc_start = np.maximum(doc_offsets[doc], start)
    pad = seq_len - len(index)
    return {
        "input_ids": np.concatenate(
            [
                np.asarray(tokens[start:stop], dtype=np.int64),
                np.full(pad, pad_token_id, dtype=np.int64),
            ]
        ),
        "position_ids": np.concatenate([index - doc_start, np.zeros(pad, dtype=np.int64)]),
        "document_ids": np.concatenate(
            [doc - (doc[0] if len(doc) else 0), np.full(pad, -1, dtype=np.int64)]
        ),
    }


class PackedDataset(torch.utils.data.Dataset):
    """Documents laid end to end and cut into rows of ``seq_len`` tokens (see the module doc).

    Example:
        >>> tokens, offsets = np.array([1, 2, 3, 4, 5]), np.array([0, 3, 5])
        >>> PackedDataset(tokens, offsets, seq_len=4, pad_token_id=0)[0]["position_ids"]
        array([0, 1, 2, 0])
    """

    def __init__(
        self,
        tokens: np.ndarray,
        doc_offsets: np.ndarray,
        *,
        seq_len: int,
        pad_token_id: int,
        drop_last: bool = False,
    ) -> None:
        """``drop_last`` drops a last row shorter than ``seq_len`` instead of padding it."""
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, not {seq_len}.")
        self.tokens = tokens
        self.doc_offsets = np.asarray(doc_offsets, dtype=np.int64)
        self.seq_len = seq_len
        self.pad_token_id = pad_token_id
        full, rest = divmod(len(tokens), seq_len)
        self._rows = full if drop_last or rest == 0 else full + 1

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self._rows:
            raise IndexError(f"Row {index} is out of range for {self._rows} packed rows.")
        return pack_row(
            self.tokens, self.doc_offsets, index * self.seq_len, self.seq_len, self.pad_token_id
        )
