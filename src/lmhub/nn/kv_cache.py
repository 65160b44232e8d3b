"""Key/value caches for incremental decoding.

A cache is handed to a model's forward; every attention layer calls ``update(layer_idx, k, v)``
with the new keys and values ``[batch, kv_heads, new, head_dim]`` and attends over what it
returns. After the last layer the model calls ``advance(new)``.

* :class:`DynamicKVCache` grows by concatenation: nothing to size up front.
* :class:`StaticKVCache` preallocates ``max_seq_len`` positions per layer and returns views of
  the filled prefix, so decoding allocates nothing per step. Layers given a sliding window keep
  only a window-sized ring buffer; a model reads where each returned key sits from
  :meth:`KVCache.key_positions` and masks accordingly, or skips the mask where
  :meth:`KVCache.window_is_full` says the ring holds exactly the window.

Both store only the key/value heads (grouped- and multi-query attention repeat them later), and
size each layer from the first tensors it receives, so per-layer head counts may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class KVCache:
    """Base class: tracks how many positions are cached."""

    def __init__(self) -> None:
        self.seq_len = 0
        """The number of positions cached before the current forward call."""
        self.layer_states: dict[int, dict[str, torch.Tensor]] = {}
        """What recurrent layers (linear attention) carry from call to call, by layer index:
        a fixed-size state each layer reads and replaces itself, beside the keys and values."""

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` for ``layer_idx`` and return all keys and values of that layer."""
        raise NotImplementedError

    def key_positions(self, layer_idx: int, num_new: int) -> torch.Tensor | None:
        """Where the keys that ``update`` will return for ``num_new`` new positions sit.

        ``None`` (the default) means in order: key ``j`` is position ``j``, as in a plain causal
        cache. A ring buffer returns a ``[kv_len]`` tensor of absolute positions, ``-1`` for
        slots not written yet; build the layer's mask with
        ``build_attention_mask(..., key_positions=...)``.
        """
        del layer_idx, num_new
        return None

    def window_is_full(self, layer_idx: int, num_new: int) -> bool:
        """Whether the keys ``update`` will return for ``num_new`` new positions are exactly the
        last ``window`` positions of a sliding-window layer, so a causal query sees all of them
        and the layer needs no mask beyond padding (a ring buffer once it has wrapped, at one
        new position per call). ``False`` (the default) promises nothing."""
        del layer_idx, num_new
        return False

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


class StaticKVCache(KVCache):
    """A preallocated cache of ``max_seq_len`` positions per layer (prompt + new tokens).

    ``update`` copies the new keys/values into place and returns views of the filled prefix,
    so a decode step allocates nothing. Buffers are created on a layer's first ``update``, with
    that call's batch size, head count, head dim, dtype and device.

    ``sliding_windows[i]`` (``None`` = full attention) gives layer ``i`` a ring buffer of that
    many slots when it is smaller than ``max_seq_len``: position ``p`` lives in slot
    ``p % window``, and :meth:`key_positions` says which position each returned key holds.

    Example:
        >>> cache = StaticKVCache(max_seq_len=prompt_len + max_new_tokens)
        >>> logits = model(prompt_ids, cache=cache)
        >>> logits = model(next_ids, cache=cache)
    """

    def __init__(
        self, max_seq_len: int, *, sliding_windows: Sequence[int | None] | None = None
    ) -> None:
        super().__init__()
        if max_seq_len <= 0:
            raise ValueError(f"max_seq_len must be positive, got {max_seq_len}.")
        self.max_seq_len = max_seq_len
        self.windows: dict[int, int] = {
            i: w for i, w in enumerate(sliding_windows or ()) if w is not None and w < max_seq_len
        }
        """Layer index -> ring size, for the layers that keep a ring buffer."""
        self._keys: dict[int, torch.Tensor] = {}
        self._values: dict[int, torch.Tensor] = {}

    def _buffers(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self._keys.get(layer_idx)
        if keys is None:
            size = self.windows.get(layer_idx, self.max_seq_len)
            # Sized apart: keys and values may differ in heads and width (MLA's latent cache).
            keys = k.new_zeros(k.shape[0], k.shape[1], size, k.shape[3])
            self._keys[layer_idx] = keys
            self._values[layer_idx] = v.new_zeros(v.shape[0], v.shape[1], size, v.shape[3])
        return keys, self._values[layer_idx]

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, new = self.seq_len, k.shape[2]
        end = start + new
        if end > self.max_seq_len:
            raise ValueError(
                f"The static KV cache holds {self.max_seq_len} positions, but {end} are needed. "
                "Size it for the prompt plus every new token."
            )
        keys, values = self._buffers(layer_idx, k, v)
        window = self.windows.get(layer_idx)
        if window is None:
            keys[:, :, start:end].copy_(k)
            values[:, :, start:end].copy_(v)
            return keys[:, :, :end], values[:, :, :end]
        return self._update_ring(keys, values, k, v, window)

    def _update_ring(
        self,
        keys: torch.Tensor,
        values: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        window: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, new = self.seq_len, k.shape[2]
        if new == 1:
            # One query sees exactly the last `window` positions: write first, return the ring.
            keys[:, :, start % window].copy_(k[:, :, 0])
            values[:, :, start % window].copy_(v[:, :, 0])
            return keys, values
        # Several queries: the earliest one may need keys the new ones would overwrite, so
        # attend over the old ring plus the new keys, then keep the last `window` positions.
        all_keys, all_values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
        kept = min(new, window)
        slots = torch.arange(start + new - kept, start + new, device=k.device) % window
        keys.index_copy_(2, slots, k[:, :, new - kept :])
        values.index_copy_(2, slots, v[:, :, new - kept :])
        return all_keys, all_values

    def window_is_full(self, layer_idx: int, num_new: int) -> bool:
        # One new position written into a ring with every slot filled: the ring holds the last
        # `window` positions, the new one included (window 1: the new one alone).
        window = self.windows.get(layer_idx)
        return window is not None and num_new == 1 and self.seq_len + 1 >= window

    def key_positions(self, layer_idx: int, num_new: int) -> torch.Tensor | None:
        window = self.windows.get(layer_idx)
        if window is None:
            return None
        start = self.seq_len
        # Slot s holds the latest position p < start with p % window == s (or nothing: -1).
        slots = torch.arange(window)
        last = start - 1 - (start - 1 - slots) % window
        ring = torch.where(last >= 0, last, -1)
        if num_new == 1:
            ring[start % window] = start
            return ring
        return torch.cat([ring, torch.arange(start, start + num_new)])


class ExternalCacheBridge(KVCache):
    """An lmhub ``KVCache`` view of another library's cache, for one forward call.

    The wrapped object needs ``get_seq_length()`` and ``update(k, v, layer_idx)`` returning all
    keys and values of the layer (transformers' ``Cache`` API); it keeps the tensors, so its own
    bookkeeping (beam reordering, cropping) keeps working. ``seq_len`` is fixed when the bridge is
    made, as the ``KVCache`` contract wants (positions cached before this call): make a new bridge
    for every forward.

    Example:
        >>> from transformers import DynamicCache
        >>> hf_cache = DynamicCache()
        >>> logits = lmhub_model(ids, cache=ExternalCacheBridge(hf_cache))
        >>> hf_cache.get_seq_length() == ids.shape[1]
        True
    """

    def __init__(self, cache: Any) -> None:
        super().__init__()
        self.cache = cache
        """The wrapped cache; it stores the keys and values."""
        # Recurrent layers' states and the length they have seen ride on the wrapped object, so
        # they outlive the bridge (a model of linear-attention layers alone stores no keys).
        extra = cache.__dict__.get("lmhub_extra")
        if extra is None:
            extra = cache.__dict__["lmhub_extra"] = {"seq_len": 0, "layer_states": {}}
            _follow_beam_reordering(cache, extra["layer_states"])
        self.layer_states = extra["layer_states"]
        self.seq_len = max(int(cache.get_seq_length()), extra["seq_len"])

    def advance(self, num_new: int) -> None:
        super().advance(num_new)
        self.cache.__dict__["lmhub_extra"]["seq_len"] = self.seq_len

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cache.update(k, v, layer_idx)


def _follow_beam_reordering(cache: Any, states: dict[int, dict[str, torch.Tensor]]) -> None:
    """Make ``cache.reorder_cache(beam_idx)`` (beam search) reorder ``states`` too."""
    reorder = getattr(cache, "reorder_cache", None)
    if reorder is None:
        return

    def reorder_cache(beam_idx: torch.Tensor) -> Any:
        result = reorder(beam_idx)
        for state in states.values():
            for name, t in state.items():
                state[name] = t.index_select(0, beam_idx.to(t.device))
        return result

    cache.reorder_cache = reorder_cache
