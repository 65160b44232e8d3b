"""The bridge between transformers' cache objects and lmhub's :class:`~lmhub.nn.kv_cache.KVCache`.

Decision: the cache that crosses the Hugging Face boundary is always a transformers ``Cache``
(``DynamicCache`` by default, whatever ``generate()`` or the caller hands in). lmhub models never
see it directly: they get an :class:`HFCacheBridge` (lmhub's
:class:`~lmhub.nn.kv_cache.ExternalCacheBridge`), an lmhub ``KVCache`` whose ``update`` writes
into the transformers cache. So ``generate()``'s own bookkeeping (beam reordering, cropping,
``get_seq_length``) works unchanged, and ``outputs.past_key_values`` is the same object the caller
passed in.
"""

from lmhub.nn.kv_cache import ExternalCacheBridge as HFCacheBridge

__all__ = ["HFCacheBridge"]
