"""Shared building blocks: norms, RoPE, attention, feed-forward, masks, KV caches."""
