"""Autoregressive generation: prefill the prompt, then one token per step.

The loop is built to do little per step besides the model call: the KV cache is preallocated
(:class:`~lmhub.nn.kv_cache.StaticKVCache`), the attention mask of a padded batch and every
position id are built once up front and sliced per step, and on CPU the model runs on fused,
reordered copies of its weights (:mod:`lmhub.nn.decode_weights`), because matrix-vector products
over those weights are most of a decode step.

Left-padded batches (``attention_mask`` with zeros on the left) give each row the same tokens
as that prompt alone: padding is masked out and positions count real tokens only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from lmhub.errors import GenerationError
from lmhub.generation.sampling import (
    apply_repetition_penalty,
    check_sampling_args,
    next_token,
    seen_tokens,
)
from lmhub.generation.stopping import StopArg, StopCriteria, eos_ids
from lmhub.nn.decode_weights import decode_weights
from lmhub.nn.kv_cache import DynamicKVCache, KVCache, StaticKVCache
from lmhub.nn.masks import positions_from_padding

CacheKind = Literal["static", "dynamic"] | None
CACHE_KINDS: tuple[str | None, ...] = ("static", "dynamic", None)


def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    stop: StopArg = None,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    cache: CacheKind = "static",
    pad_token_id: int | None = None,
    tokenizer: Any = None,
    fused_weights: bool | None = None,
) -> torch.Tensor:
    """Continue each prompt in ``input_ids`` ``[batch, prompt]``; return ``[batch, prompt + new]``.

    Args:
        max_new_tokens: the most tokens to add; fewer when every row stops early.
        temperature: 0 is greedy (the arg-max); above 0 samples from ``softmax(logits / T)``.
        top_k: sample among the ``top_k`` most likely tokens only (1 is greedy).
        top_p: sample among the most likely tokens holding ``top_p`` of the probability.
        repetition_penalty: above 1 makes tokens already in the row less likely (as in HF).
        eos_token_id: token id(s) that end a row; ``None`` never stops early.
        stop: stop strings and/or token-id sequences, looked for in the new tokens; strings
            need ``tokenizer``.
        attention_mask: ``[batch, prompt]``, 0 for (left) padding; ``None`` means no padding.
        generator: the random generator for sampling (seed it for reproducible samples).
        cache: ``"static"`` (preallocated), ``"dynamic"`` (grown), or ``None`` (recompute the
            whole sequence each step). Models with ``supports_kv_cache = False`` always
            recompute. With ``"static"``, layers a model lists in its ``kv_cache_windows``
            attribute (one window or ``None`` per layer) keep window-sized ring buffers.
        pad_token_id: fills rows after they stop; defaults to the model config's
            ``pad_token_id``, else the (first) EOS id, else 0.
        tokenizer: decodes new tokens to match ``stop`` strings.
        fused_weights: run on fused decode-time weight copies (~2x faster on CPU, at the cost
            of one extra copy of the weights in memory, kept for the next call until the model
            is freed or ``lmhub.nn.decode_weights.clear_decode_weights(model)``); ``None``
            turns them on for models on the CPU when the copy fits in half the free memory.

    Stopped rows keep their EOS (or stop) tokens and are padded; the loop ends when every row
    has stopped.

    Example:
        >>> ids = torch.tensor([tokenizer.encode("Once upon a time")])
        >>> out = lmhub.generate(model, ids, max_new_tokens=20, eos_token_id=tokenizer.eos_token_id)
        >>> tokenizer.decode(out[0, ids.shape[1]:])
    """
    session = _Session(
        model,
        input_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_token_id=eos_token_id,
        stop=stop,
        attention_mask=attention_mask,
        generator=generator,
        cache=cache,
        pad_token_id=pad_token_id,
        tokenizer=tokenizer,
        fused_weights=fused_weights,
    )
    prompt_len = session.prompt_len
    out = torch.empty(
        session.batch, prompt_len + max_new_tokens, dtype=torch.long, device=session.device
    )
    out[:, :prompt_len] = session.input_ids
    steps = 0
    with torch.inference_mode(), session.weights:
        while (tokens := session.step()) is not None:
            out[:, prompt_len + steps] = tokens
            steps += 1
    return out[:, : prompt_len + steps]


def generate_stream(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    stop: StopArg = None,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    cache: CacheKind = "static",
    pad_token_id: int | None = None,
    tokenizer: Any = None,
    fused_weights: bool | None = None,
) -> Iterator[torch.Tensor]:
    """Like :func:`generate`, but yield each step's new tokens ``[batch]`` as they are made.

    Rows that have stopped yield the pad id. Concatenated, the yielded tokens are what
    :func:`generate` appends to the prompt.

    Example:
        >>> decoder = IncrementalDecoder(tokenizer)
        >>> for tokens in lmhub.generate_stream(model, ids, max_new_tokens=50):
        ...     print(decoder.push(int(tokens[0])), end="", flush=True)
    """
    session = _Session(
        model,
        input_ids,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_token_id=eos_token_id,
        stop=stop,
        attention_mask=attention_mask,
        generator=generator,
        cache=cache,
        pad_token_id=pad_token_id,
        tokenizer=tokenizer,
        fused_weights=fused_weights,
    )
    while True:
        # Inference mode and the fused weights are switched on per step only, so the caller's
        # code between two tokens runs with its own settings.
        with torch.inference_mode(), session.weights:
            tokens = session.step()
        if tokens is None:
            return
        yield tokens


class _Session:
    """The state of one generation run; ``step()`` returns the next tokens or ``None``."""

    def __init__(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        *,
        max_new_tokens: int,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        repetition_penalty: float | None,
        eos_token_id: int | Sequence[int] | None,
        stop: StopArg,
        attention_mask: torch.Tensor | None,
        generator: torch.Generator | None,
        cache: CacheKind,
        pad_token_id: int | None,
        tokenizer: Any,
        fused_weights: bool | None,
    ) -> None:
        check_sampling_args(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
        )
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise GenerationError(
                f"max_new_tokens is {max_new_tokens!r}, but it must be an int >= 0.",
                field="max_new_tokens",
                value=max_new_tokens,
            )
        if cache not in CACHE_KINDS:
            raise GenerationError(
                f"cache is {cache!r}, which is not one of 'static', 'dynamic' or None.",
                field="cache",
                value=cache,
            )
        self.model = model
        self.device = _model_device(model)
        self.input_ids = _check_ids(input_ids).to(self.device)
        self.batch, self.prompt_len = self.input_ids.shape
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.repetition_penalty = repetition_penalty
        self.generator = generator
        total = self.prompt_len + max_new_tokens

        # Padding: one mask and one table of positions for the whole run, sliced per step.
        self.mask: torch.Tensor | None = None
        if attention_mask is not None:
            if attention_mask.shape != self.input_ids.shape:
                raise GenerationError(
                    f"attention_mask has shape {tuple(attention_mask.shape)}, but input_ids has "
                    f"{tuple(self.input_ids.shape)}. Pass one mask entry per prompt token.",
                    field="attention_mask",
                )
            prompt_mask = attention_mask.to(self.device, torch.bool)
            if not bool(prompt_mask.all()):
                self.mask = torch.ones(self.batch, total, dtype=torch.bool, device=self.device)
                self.mask[:, : self.prompt_len] = prompt_mask
        if self.mask is not None:
            self.positions = positions_from_padding(self.mask)
        else:
            self.positions = torch.arange(total, device=self.device).expand(self.batch, total)

        self.stopper = StopCriteria(
            eos_token_id=eos_token_id,
            stop=stop,
            tokenizer=tokenizer,
            batch_size=self.batch,
            device=self.device,
        )
        self.pad_token_id = _pad_id(model, pad_token_id, eos_token_id)
        self.tokens = self.input_ids  # all tokens so far, kept only when recomputing
        if not getattr(type(model), "supports_kv_cache", False):
            cache = None
        self.cache: KVCache | None = None
        if cache == "static":
            # A model with sliding-window layers lists their windows (None = full attention)
            # to get ring buffers; it must then mask with KVCache.key_positions.
            windows = getattr(model, "kv_cache_windows", None)
            self.cache = StaticKVCache(max(total - 1, 1), sliding_windows=windows)
        elif cache == "dynamic":
            self.cache = DynamicKVCache()
        if fused_weights is None:
            fused_weights = _fused_by_default(model, self.device)
        with torch.inference_mode():
            self.weights = decode_weights(model, enabled=fused_weights)
        self.seen: torch.Tensor | None = None
        # A model's optional `logits(hidden)` lets the prefill project the last position only.
        logits_fn = getattr(model, "logits", None)
        self._logits_fn = logits_fn if callable(logits_fn) else None
        self._done_steps = 0
        self._next_input: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Run the model on ``ids`` at positions ``start...``; return last-position logits."""
        end = start + ids.shape[1]
        mask = None if self.mask is None else self.mask[:, :end]
        positions = self.positions[:, start:end]
        if self._logits_fn is not None:
            hidden = self.model(
                ids,
                attention_mask=mask,
                position_ids=positions,
                cache=self.cache,
                return_hidden=True,
            )
            return self._logits_fn(hidden[:, -1])
        logits = self.model(ids, attention_mask=mask, position_ids=positions, cache=self.cache)
        return logits[:, -1]

    def _logits(self) -> torch.Tensor:
        step = self._done_steps
        if step == 0:
            return self._forward(self.input_ids, 0)
        assert self._next_input is not None
        if self.cache is None:
            self.tokens = torch.cat([self.tokens, self._next_input[:, None]], dim=1)
            return self._forward(self.tokens, 0)
        return self._forward(self._next_input[:, None], self.prompt_len + step - 1)

    def step(self) -> torch.Tensor | None:
        """Return the next token of every row (pad for stopped rows), or ``None`` at the end."""
        if self._done_steps >= self.max_new_tokens or (
            self._done_steps > 0 and self.stopper.active and bool(self.stopper.done.all())
        ):
            return None
        logits = self._logits().float()
        if self.repetition_penalty is not None:
            if self.seen is None:
                mask = None if self.mask is None else self.mask[:, : self.prompt_len]
                self.seen = seen_tokens(self.input_ids, logits.shape[-1], mask)
            logits = apply_repetition_penalty(logits, self.seen, self.repetition_penalty)
        tokens = next_token(
            logits,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            generator=self.generator,
        )
        if self.stopper.active:
            tokens = tokens.masked_fill(self.stopper.done, self.pad_token_id)
            self.stopper.update(tokens)
        if self.seen is not None:
            self.seen.scatter_(1, tokens[:, None], True)
        self._next_input = tokens
        self._done_steps += 1
        return tokens


def _check_ids(input_ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor):
        raise GenerationError(
            f"input_ids is a {type(input_ids).__name__}; pass a LongTensor [batch, prompt], e.g. "
            "torch.tensor([tokenizer.encode(text)]).",
            field="input_ids",
        )
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise GenerationError(
            f"input_ids has shape {tuple(input_ids.shape)}, but it must be [batch, prompt] with "
            "at least one prompt token. Add a batch dimension with input_ids[None].",
            field="input_ids",
        )
    if input_ids.dtype not in (torch.long, torch.int32, torch.int64):
        raise GenerationError(
            f"input_ids has dtype {input_ids.dtype}; token ids must be integers (torch.long).",
            field="input_ids",
        )
    return input_ids.long()


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _fused_by_default(model: nn.Module, device: torch.device) -> bool:
    # On CPU the fused copies make decoding ~2x faster, but they double the weights' memory:
    # skip them when that would not fit comfortably in what is free now.
    if device.type != "cpu":
        return False
    # The copies are plain tensors: weights that are tensor subclasses (DTensor shards under
    # tensor parallelism) run unfused.
    if any(type(p.data) is not torch.Tensor for p in model.parameters()):
        return False
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return True
    return size < free // 2


def _pad_id(model: nn.Module, pad_token_id: int | None, eos_token_id: Any) -> int:
    if pad_token_id is not None:
        return pad_token_id
    config_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if isinstance(config_pad, int):
        return config_pad
    eos = eos_ids(eos_token_id)
    return eos[0] if eos else 0
