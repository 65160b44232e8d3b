"""The cache of an encoder-decoder's decoder: self-attention keys/values grow one step at a
time, cross-attention keys/values are computed from the encoder output once and reused."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lmhub.nn.kv_cache import DynamicKVCache


class EncoderDecoderCache(DynamicKVCache):
    """A :class:`~lmhub.nn.kv_cache.DynamicKVCache` for the decoder's self-attention plus the
    cross-attention keys/values of each layer.

    Example:
        >>> cache = EncoderDecoderCache()
        >>> logits = model.decode(start_ids, memory, cache=cache)   # fills both parts
        >>> logits = model.decode(next_ids, memory, cache=cache)    # projects no encoder state
    """

    def __init__(self) -> None:
        super().__init__()
        self._cross: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def cross_kv(
        self, layer_idx: int, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return layer ``layer_idx``'s cross-attention keys/values, calling ``compute`` only
        the first time."""
        kv = self._cross.get(layer_idx)
        if kv is None:
            kv = self._cross[layer_idx] = compute()
        return kv

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (in that order) of every cached tensor (beam search)."""
        for store in (self._keys, self._values):
            for layer, t in store.items():
                store[layer] = t.index_select(0, index)
        self._cross = {
            layer: (k.index_select(0, index), v.index_select(0, index))
            for layer, (k, v) in self._cross.items()
        }
