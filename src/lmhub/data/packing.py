"""Packing documents into fixed-length rows, with the document boundaries kept.

The chosen documents are laid end to end (in the order given) and cut every ``seq_len`` tokens:
no token is wasted or repeated, and a document may span rows. Rows are built on access from the
tokenised data, so packing costs no memory. Each row carries, besides its ids:

* ``position_ids`` that restart at 0 where a document (or the part of one in this row) starts;
* ``document_ids``, the row-local index of each token's document (-1 for the padding of the
  last row), from which :func:`document_mask` builds the block-diagonal causal mask that
  keeps attention inside a document.

With both, a packed row gives every document the outputs it has when run alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmhub.nn.masks import causal_mask

__all__ = ["PackedDataset", "document_mask"]


def document_mask(document_ids: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """Return the boolean mask ``[batch, 1, seq, seq]`` letting a token see the (earlier, when
    ``causal``) tokens of its own document only (True = may attend).

    Causal, it is :func:`lmhub.nn.masks.causal_mask` restricted to equal document ids: the
    block-diagonal causal mask. ``causal=False`` gives bidirectional blocks, for the masked and
    diffusion LM types. Padding (id -1) sees only padding, so no row of the mask is empty.

    Example:
        >>> document_mask(torch.tensor([[0, 0, 1]]))[0, 0]
        tensor([[ True, False, False],
                [ True,  True, False],
                [False, False,  True]])
    """
    seq = document_ids.shape[-1]
    mask = document_ids[:, :, None] == document_ids[:, None, :]
    if causal:
        mask = mask & causal_mask(seq, seq, device=document_ids.device)
    return mask[:, None]


class PackedDataset(torch.utils.data.Dataset):
    """Documents laid end to end and cut into rows of ``seq_len`` tokens (see the module doc).

    Example:
        >>> tokens, offsets = np.array([1, 2, 3, 4, 5]), np.array([0, 3, 5])
        >>> row = PackedDataset(tokens, offsets, seq_len=4, pad_token_id=0)[0]
        >>> row["position_ids"].tolist(), row["document_ids"].tolist()
        ([0, 1, 2, 0], [0, 0, 0, 1])
    """

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        *,
        seq_len: int,
        pad_token_id: int,
        documents: Sequence[int] | np.ndarray | None = None,
        drop_last: bool = False,
    ) -> None:
        """Args:
        tokens: every document's ids end to end.
        offsets: ``[num_docs + 1]`` where each document starts in ``tokens``, then the end.
        seq_len: tokens per row.
        pad_token_id: fills the end of a last, short row.
        documents: which documents to pack, in this order (default: all, in order).
        drop_last: drop a last row shorter than ``seq_len`` instead of padding it.
        """
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, not {seq_len}.")
        self.tokens = tokens
        self.seq_len = seq_len
        self.pad_token_id = pad_token_id
        offsets = np.asarray(offsets, dtype=np.int64)
        docs = np.arange(len(offsets) - 1) if documents is None else np.asarray(documents)
        self._starts = offsets[docs]  # where each packed document starts in `tokens`
        lengths = offsets[docs + 1] - self._starts
        # Where each packed document starts in the packed stream, then the stream's end.
        self._stream = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        full, rest = divmod(int(self._stream[-1]), seq_len)
        self._rows = full if drop_last or rest == 0 else full + 1

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Row ``index``: ``input_ids``, ``position_ids`` and ``document_ids`` (int64 arrays)."""
        if not 0 <= index < self._rows:
            raise IndexError(f"Row {index} is out of range for {self._rows} packed rows.")
        start = index * self.seq_len
        where = np.arange(start, min(start + self.seq_len, int(self._stream[-1])))
        # Skip empty documents: each position belongs to the last document starting at or before.
        doc = np.searchsorted(self._stream, where, side="right") - 1
        ids = self.tokens[self._starts[doc] + where - self._stream[doc]]
        # A document that began in an earlier row restarts its positions at this row's start.
        positions = where - np.maximum(self._stream[doc], start)
        # Number the row's documents 0, 1, ... (empty documents in between take no number).
        local = np.concatenate([[0], np.cumsum(np.diff(doc) != 0)]) if len(doc) else doc
        pad = self.seq_len - len(where)
        return {
            "input_ids": np.concatenate(
                [ids.astype(np.int64), np.full(pad, self.pad_token_id, dtype=np.int64)]
            ),
            "position_ids": np.concatenate([positions, np.zeros(pad, dtype=np.int64)]),
            "document_ids": np.concatenate([local, np.full(pad, -1, dtype=np.int64)]),
        }
