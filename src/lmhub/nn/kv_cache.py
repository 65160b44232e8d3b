"""Key/value caches for incremental decoding.

A cache is handed to a model's forward; every attention layer calls ``update(layer_idx, k, v)``
with the new keys and values ``[batch, kv_heads, new, head_dim]`` and attends over what it
returns. After the last layer the model calls ``advance(new)``.
"""

from __future__ import annotations

import torch


class KVCache:
    """Base class: tracks how many positions are cached."""

    def __init__(self) -> None:
        self.seq_len = 0
        """The number of positions cached before the current forward call."""

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` for ``layer_idx`` and return all keys and values of that layer."""
        raise NotImplementedError

    def advance(self, num_new: int) -> None:
        """Mark ``num_new`` more positions as cached (called once per forward, after all layers)."""
        self.seq_len += num_new


class DynamicKVCache(KVCache):
    """A cache that grows by concatenation; simple, and right for short or one-off decoding.

    Example:
        >>> cache = DynamicKVCache()
        >>> logits = model(prompt_ids, cache=cache)          # fills the cache
        >>> logits = model(next_ids, cache=cache)            # attends over prompt + next
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[int, torch.Tensor] = {}
        self._values: dict[int, torch.Tensor] = {}

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx in self._keys:
            k = torch.cat([self._keys[layer_idx], k], dim=2)
            v = torch.cat([self._values[layer_idx], v], dim=2)
        self._keys[layer_idx] = k
        self._values[layer_idx] = v
        return k, v
