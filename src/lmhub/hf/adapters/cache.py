"""The bridge between transformers' cache objects and lmhub's :class:`~lmhub.nn.kv_cache.KVCache`.

Decision: the cache that crosses the Hugging Face boundary is always a transformers ``Cache``
(``DynamicCache`` by default, whatever ``generate()`` or the caller hands in). lmhub models never
see it directly: they get an :class:`HFCacheBridge`, an lmhub ``KVCache`` whose ``update`` writes
into the transformers cache. So ``generate()``'s own bookkeeping (beam reordering, cropping,
``get_seq_length``) works unchanged, and ``outputs.past_key_values`` is the same object the caller
passed in.
"""

from __future__ import annotations

from typing import Any

import torch

from lmhub.nn.kv_cache import KVCache


class HFCacheBridge(KVCache):
    """An lmhub ``KVCache`` view of a transformers ``Cache``, for one forward call.

    ``seq_len`` is what the transformers cache held when the bridge was made, as the lmhub
    contract wants ("positions cached before the current forward"): layers that read it must not
    see the keys that earlier layers of the same call have already appended. Make a new bridge
    for every forward.

    Example:
        >>> from transformers import DynamicCache
        >>> hf_cache = DynamicCache()
        >>> logits = lmhub_model(ids, cache=HFCacheBridge(hf_cache))
        >>> hf_cache.get_seq_length() == ids.shape[1]
        True
    """

    def __init__(self, cache: Any) -> None:
        super().__init__()
        self.cache = cache
        """The wrapped transformers ``Cache``; it stores the keys and values."""
        self.seq_len = int(cache.get_seq_length())

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.cache.update(k, v, layer_idx)
        return keys, values
