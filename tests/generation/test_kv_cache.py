"""The static cache (views of a preallocated buffer) and its sliding-window ring buffer."""

from __future__ import annotations

import pytest
import torch

from lmhub.nn.attention import Attention
from lmhub.nn.kv_cache import DynamicKVCache, StaticKVCache
from lmhub.nn.masks import build_attention_mask

ATOL = 1e-5


def test_static_cache_returns_views_of_the_filled_prefix() -> None:
    cache = StaticKVCache(6)
    k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 4, 8)
    keys, values = cache.update(0, k, v)
    assert keys.shape == (2, 3, 4, 8) and torch.equal(keys, k) and torch.equal(values, v)
    cache.advance(4)
    k2, v2 = torch.randn(2, 3, 1, 8), torch.randn(2, 3, 1, 8)
    keys, values = cache.update(0, k2, v2)
    assert keys.shape == (2, 3, 5, 8)
    assert torch.equal(keys, torch.cat([k, k2], dim=2))
    assert keys.untyped_storage().data_ptr() == cache._keys[0].untyped_storage().data_ptr()
    assert cache.key_positions(0, 1) is None


def test_static_cache_sizes_each_layer_from_its_tensors_and_refuses_overflow() -> None:
    cache = StaticKVCache(3)
    cache.update(0, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    cache.update(1, torch.randn(1, 1, 3, 16), torch.randn(1, 1, 3, 16))  # MQA layer
    assert cache._keys[0].shape == (1, 2, 3, 4) and cache._keys[1].shape == (1, 1, 3, 16)
    cache.advance(3)
    with pytest.raises(ValueError, match="holds 3 positions, but 4 are needed"):
        cache.update(0, torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))


def test_ring_buffer_key_positions() -> None:
    cache = StaticKVCache(10, sliding_windows=[4, None])
    assert cache.windows == {0: 4}
    cache.seq_len = 6  # positions 0..5 seen; the ring holds 2..5 in slots 2, 3, 0, 1
    assert cache.key_positions(0, 1).tolist() == [4, 5, 6, 3]
    assert cache.key_positions(0, 2).tolist() == [4, 5, 2, 3, 6, 7]
    assert cache.key_positions(1, 1) is None
    cache.seq_len = 2
    assert cache.key_positions(0, 1).tolist() == [0, 1, 2, -1]


def test_a_ring_buffer_is_full_once_it_wrapped_at_one_new_position() -> None:
    cache = StaticKVCache(10, sliding_windows=[4, None, 1])
    full = []
    for seq_len in range(8):
        cache.seq_len = seq_len
        full.append(cache.window_is_full(0, 1))
        positions = cache.key_positions(0, 1)
        # Full exactly when every slot holds one of the last 4 positions, the new one included.
        last_four = [p for p in range(seq_len - 3, seq_len + 1) if p >= 0]
        assert full[-1] == (sorted(positions.tolist()) == last_four)
        assert not cache.window_is_full(0, 2) and not cache.window_is_full(1, 1)
        assert cache.window_is_full(2, 1)  # a window of one: the new position alone
    assert full == [False, False, False, True, True, True, True, True]
    assert not DynamicKVCache().window_is_full(0, 1)


@pytest.mark.parametrize("padded", [False, True])
def test_ring_buffer_attention_matches_full_sliding_window_attention(padded: bool) -> None:
    torch.manual_seed(0)
    window, total = 4, 13
    attn = Attention(32, num_heads=4, num_kv_heads=2, head_dim=8).eval()
    x = torch.randn(2, total, 32)
    padding = torch.ones(2, total, dtype=torch.bool)
    if padded:
        padding[1, :3] = False
    with torch.no_grad():
        full_mask = build_attention_mask(
            q_len=total, kv_len=total, padding_mask=padding, sliding_window=window
        )
        want = attn(x, mask=full_mask)
        cache = StaticKVCache(total, sliding_windows=[window])
        outs, start = [], 0
        for n in [6, 3, 1, 1, 1, 1]:  # the prompt and a chunk overflow the ring
            end = start + n
            mask = build_attention_mask(
                q_len=n,
                kv_len=end,
                padding_mask=padding[:, :end],
                sliding_window=window,
                key_positions=cache.key_positions(0, n),
            )
            outs.append(attn(x[:, start:end], mask=mask, cache=cache))
            cache.advance(n)
            start = end
        assert cache._keys[0].shape[2] == window
    got = torch.cat(outs, dim=1)
    assert (got - want)[padding].abs().max().item() <= ATOL


def test_dynamic_cache_grows() -> None:
    cache = DynamicKVCache()
    cache.update(0, torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    cache.advance(3)
    keys, _ = cache.update(0, torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))
    assert keys.shape == (1, 2, 4, 4) and cache.seq_len == 3


class _WindowLM(torch.nn.Module):
    """A tiny LM whose first layer attends over a sliding window (ring buffer in the cache)."""

    supports_kv_cache = True

    def __init__(self, vocab: int = 40, dim: int = 32, window: int = 3) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.layers = torch.nn.ModuleList(
            Attention(dim, num_heads=4, num_kv_heads=2, head_dim=8, layer_idx=i) for i in range(2)
        )
        self.head = torch.nn.Linear(dim, vocab)
        self.kv_cache_windows = [window, None]

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: StaticKVCache | DynamicKVCache | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        s = input_ids.shape[1]
        past = cache.seq_len if cache is not None else 0
        x = self.embed(input_ids)
        for i, attn in enumerate(self.layers):
            mask = build_attention_mask(
                q_len=s,
                kv_len=past + s,
                padding_mask=attention_mask,
                sliding_window=self.kv_cache_windows[i],
                key_positions=cache.key_positions(i, s) if cache is not None else None,
            )
            x = x + attn(x, mask=mask, is_causal=mask is None, cache=cache)
        if cache is not None:
            cache.advance(s)
        return x if return_hidden else self.head(x)


def test_generate_gives_sliding_window_layers_a_ring_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lmhub

    ring_updates: list[int] = []
    update_ring = StaticKVCache._update_ring

    def spy(self: StaticKVCache, *args: object) -> object:
        ring_updates.append(self.seq_len)
        return update_ring(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(StaticKVCache, "_update_ring", spy)
    torch.manual_seed(0)
    model = _WindowLM().eval()
    ids = torch.randint(0, 40, (2, 5))
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, :2] = 0
    kwargs = {"attention_mask": mask, "max_new_tokens": 12, "temperature": 0.0}
    static = lmhub.generate(model, ids, **kwargs)  # type: ignore[arg-type]
    assert ring_updates == [0, *range(5, 16)] and len(static.unique()) > 3
    assert torch.equal(static, lmhub.generate(model, ids, cache=None, **kwargs))  # type: ignore[arg-type]
    assert torch.equal(static, lmhub.generate(model, ids, cache="dynamic", **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["qwen2", "mistral", "gemma2"])
def test_decoding_over_a_full_ring_needs_no_mask(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lmhub
    from lmhub.nn import attention

    hub = lmhub.get_model_hub(family)
    config = lmhub.apply_overrides(hub.get_arch_config(f"{family}_tiny"), {"sliding_window": 4})
    model = hub.create_new_model(config).eval()
    ids = torch.randint(0, config.vocab_size, (2, 14))
    masks: list[torch.Tensor | None] = []
    sdpa = attention.scaled_dot_product_attention

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        masks.append(kwargs.get("mask"))  # type: ignore[arg-type]
        return sdpa(*args, **kwargs)  # type: ignore[arg-type]

    def decode() -> torch.Tensor:
        cache = StaticKVCache(14, sliding_windows=model.kv_cache_windows)
        steps = [model(ids[:, :5], cache=cache)]
        steps += [model(ids[:, t : t + 1], cache=cache) for t in range(5, 14)]
        return torch.cat(steps, dim=1)

    monkeypatch.setattr(attention, "scaled_dot_product_attention", spy)
    with torch.inference_mode():
        full = model(ids)
        got = decode()
        assert masks[-1] is None  # every layer of the last step ran unmasked
        monkeypatch.setattr(StaticKVCache, "window_is_full", lambda *args: False)
        masked = decode()
    assert (got - full).abs().max().item() <= ATOL
    assert torch.equal(got, masked)  # the mask it skips would have masked nothing
