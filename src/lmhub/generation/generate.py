"""Autoregressive generation: prefill the prompt, then one token per step.

The loop is built to do little per step besides the model call: the KV cache is preallocated
(:class:`~lmhub.nn.kv_cache.StaticKVCache`), the attention mask of a padded batch and every
position id are built once up front and sliced per step, and on CPU the model runs as its
decode-time copy (:mod:`lmhub.nn.decode_weights`: q/k/v and gate/up fused, each product on the
kernel measured fastest on this CPU), because matrix products over the weights are most of a
decode step. ``compile_decode=True`` also runs each decode step through ``torch.compile``
(:mod:`lmhub.generation.compiled`; opt-in, as compiling takes tens of seconds).

Left-padded batches (``attention_mask`` with zeros on the left) give each row the same tokens
as that prompt alone: padding is masked out and positions count real tokens only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from lmhub.errors import GenerationError
from lmhub.generation.compiled import compiled_last_logits, last_logits
from lmhub.generation.options import CacheKind, GenerationOptions
from lmhub.generation.sampling import apply_repetition_penalty, next_token, seen_tokens
from lmhub.generation.seq2seq import (
    check_seq2seq_options,
    generate_seq2seq,
    is_encoder_decoder,
    stream_seq2seq,
)
from lmhub.generation.stopping import StopArg, StopCriteria, eos_ids
from lmhub.models.registry import family_of
from lmhub.nn.decode_weights import decode_model
from lmhub.nn.kv_cache import DynamicKVCache, KVCache, StaticKVCache
from lmhub.nn.masks import positions_from_padding


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
    compile_decode: bool = False,
) -> torch.Tensor:
    """Continue each prompt in ``input_ids`` ``[batch, prompt]``; return ``[batch, prompt + new]``.

    The settings (``max_new_tokens`` to ``compile_decode``) are those of
    :class:`~lmhub.generation.options.GenerationOptions`, which checks them; invalid ones raise
    :class:`~lmhub.errors.GenerationError`, as do token ids outside the model's vocabulary, an
    empty batch, a model on the meta device, or a length whose output and cache cannot fit in
    memory.

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
        fused_weights: run the model's decode-time copy (fused projections, measured kernels;
            it costs up to one extra copy of the weights, kept for the next call until the model
            is freed or ``lmhub.nn.decode_weights.clear_decode_model(model)``); ``None``
            turns it on for models on the CPU when a copy fits in half the free memory.
        compile_decode: run each decode step through ``torch.compile``
            (:mod:`lmhub.generation.compiled`; static cache only). The first call in a process
            compiles, which takes tens of seconds on a CPU; where compiling fails, a
            ``CompileFallbackWarning`` says so and the steps run eagerly.

    Stopped rows keep their EOS (or stop) tokens and are padded; the loop ends when every row
    has stopped.

    An encoder-decoder (T5, transformer) is handed to
    :func:`~lmhub.generation.seq2seq.generate_seq2seq`: ``input_ids`` is the source, padded on
    either side, and the result is the target ``[batch, 1 + new]`` from the decoder start token;
    ``eos_token_id=None`` means the config's EOS id there. Beam search is its ``num_beams``.

    Example:
        >>> ids = torch.tensor([tokenizer.encode("Once upon a time")])
        >>> out = lmhub.generate(model, ids, max_new_tokens=20, eos_token_id=tokenizer.eos_token_id)
        >>> tokenizer.decode(out[0, ids.shape[1]:])
    """
    if is_encoder_decoder(model):
        check_seq2seq_options(stop, repetition_penalty)
        return generate_seq2seq(
            model,
            input_ids,
            max_new_tokens=max_new_tokens,
            attention_mask=attention_mask,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            generator=generator,
        )
    options = GenerationOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_token_id=eos_token_id,  # type: ignore[arg-type]  # normalised to a tuple
        stop=stop,
        cache=cache,
        pad_token_id=pad_token_id,
        fused_weights=fused_weights,
        compile_decode=compile_decode,
    )
    session = _Session(
        model,
        input_ids,
        options,
        attention_mask=attention_mask,
        generator=generator,
        tokenizer=tokenizer,
    )
    prompt_len = session.prompt_len
    out = torch.empty(
        session.batch, prompt_len + max_new_tokens, dtype=torch.long, device=session.device
    )
    out[:, :prompt_len] = session.input_ids
    steps = 0
    with torch.inference_mode():
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
    compile_decode: bool = False,
) -> Iterator[torch.Tensor]:
    """Like :func:`generate`, but yield each step's new tokens ``[batch]`` as they are made.

    Rows that have stopped yield the pad id. Concatenated, the yielded tokens are what
    :func:`generate` appends to the prompt.

    Example:
        >>> decoder = IncrementalDecoder(tokenizer)
        >>> for tokens in lmhub.generate_stream(model, ids, max_new_tokens=50):
        ...     print(decoder.push(int(tokens[0])), end="", flush=True)

    An encoder-decoder streams its target tokens (see :func:`generate`).
    """
    if is_encoder_decoder(model):
        check_seq2seq_options(stop, repetition_penalty)
        yield from stream_seq2seq(
            model,
            input_ids,
            max_new_tokens=max_new_tokens,
            attention_mask=attention_mask,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            generator=generator,
        )
        return
    options = GenerationOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_token_id=eos_token_id,  # type: ignore[arg-type]  # normalised to a tuple
        stop=stop,
        cache=cache,
        pad_token_id=pad_token_id,
        fused_weights=fused_weights,
        compile_decode=compile_decode,
    )
    session = _Session(
        model,
        input_ids,
        options,
        attention_mask=attention_mask,
        generator=generator,
        tokenizer=tokenizer,
    )
    while True:
        # Inference mode is switched on per step only, so the caller's code between two tokens
        # runs with its own settings.
        with torch.inference_mode():
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
        options: GenerationOptions,
        *,
        attention_mask: torch.Tensor | None,
        generator: torch.Generator | None,
        tokenizer: Any,
    ) -> None:
        family = family_of(model)
        if family is not None and family.kind == "encoder":
            raise GenerationError(
                f"The model is a '{family.name}' encoder: it fills in masked tokens and does not "
                "continue text. Read its logits at the masked positions instead, or use "
                "pipeline('fill-mask') on lmhub.hf.to_hf_api(model).",
                field="model",
            )
        self.device = _model_device(model)
        self.input_ids = _check_ids(input_ids, _vocab_size(model)).to(self.device)
        self.batch, self.prompt_len = self.input_ids.shape
        self.options = options
        if generator is not None and not isinstance(generator, torch.Generator):
            raise GenerationError(
                f"generator is a {type(generator).__name__}; pass a torch.Generator or None.",
                field="generator",
            )
        self.generator = generator
        total = self.prompt_len + options.max_new_tokens
        _check_fits(model, self.batch, total, options.cache, self.device)

        # Padding: one mask and one table of positions for the whole run, sliced per step.
        self.mask: torch.Tensor | None = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or (
                attention_mask.shape != self.input_ids.shape
            ):
                got = (
                    f"has shape {tuple(attention_mask.shape)}"
                    if isinstance(attention_mask, torch.Tensor)
                    else f"a {type(attention_mask).__name__}"
                )
                raise GenerationError(
                    f"attention_mask {got}, but input_ids has shape "
                    f"{tuple(self.input_ids.shape)}. Pass a tensor, one entry per prompt token.",
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

        eos_token_id = options.eos_token_id
        self.stopper = StopCriteria(
            eos_token_id=eos_token_id,
            stop=options.stop,
            tokenizer=tokenizer,
            batch_size=self.batch,
            device=self.device,
        )
        self.pad_token_id = _pad_id(model, options.pad_token_id, eos_token_id)
        self.tokens = self.input_ids  # all tokens so far, kept only when recomputing
        cache = options.cache
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
        fused_weights = options.fused_weights
        if fused_weights is None:
            fused_weights = _fused_by_default(model, self.device)
        # The decode-time copy shares the weights; its layers run fused, measured kernels.
        self.model = decode_model(model) if fused_weights else model
        self.seen: torch.Tensor | None = None
        self._logits_fn = _logits_fn(self.model)
        self._compiled = options.compile_decode and isinstance(self.cache, StaticKVCache)
        self._done_steps = 0
        self._next_input: torch.Tensor | None = None

    def _forward(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        """Run the model on ``ids`` at positions ``start...``; return last-position logits."""
        end = start + ids.shape[1]
        mask = None if self.mask is None else self.mask[:, :end]
        positions = self.positions[:, start:end]
        if self._compiled and start > 0:
            return compiled_last_logits(
                self.model, self._logits_fn, ids, mask, positions, self.cache
            )
        return last_logits(self.model, self._logits_fn, ids, mask, positions, self.cache)

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
        options = self.options
        if self._done_steps >= options.max_new_tokens or (
            self._done_steps > 0 and self.stopper.active and bool(self.stopper.done.all())
        ):
            return None
        logits = self._logits().float()
        if options.repetition_penalty is not None:
            if self.seen is None:
                mask = None if self.mask is None else self.mask[:, : self.prompt_len]
                self.seen = seen_tokens(self.input_ids, logits.shape[-1], mask)
            logits = apply_repetition_penalty(logits, self.seen, options.repetition_penalty)
        tokens = next_token(
            logits,
            temperature=options.temperature,
            top_k=options.top_k,
            top_p=options.top_p,
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


def _logits_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A model's optional ``logits(hidden)``, with which the prefill projects the last position
    only."""
    fn = getattr(model, "logits", None)
    return fn if callable(fn) else None


def _check_ids(input_ids: torch.Tensor, vocab_size: int | None) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor):
        raise GenerationError(
            f"input_ids is a {type(input_ids).__name__}; pass a LongTensor [batch, prompt], e.g. "
            "torch.tensor([tokenizer.encode(text)]).",
            field="input_ids",
        )
    if input_ids.ndim != 2 or input_ids.shape[1] == 0 or input_ids.shape[0] == 0:
        raise GenerationError(
            f"input_ids has shape {tuple(input_ids.shape)}, but it must be [batch, prompt] with "
            "at least one row and one prompt token. Add a batch dimension with input_ids[None].",
            field="input_ids",
        )
    if input_ids.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise GenerationError(
            f"input_ids has dtype {input_ids.dtype}; token ids must be integers (torch.long).",
            field="input_ids",
        )
    if input_ids.is_meta:
        raise GenerationError(
            "input_ids is on the meta device and holds no values; pass real token ids.",
            field="input_ids",
        )
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or (vocab_size is not None and high >= vocab_size):
        bad = low if low < 0 else high
        raise GenerationError(
            f"input_ids holds the token id {bad}, outside the model's vocabulary of "
            f"{vocab_size} (ids 0 to {vocab_size - 1 if vocab_size else '?'}). Encode the prompt "
            "with the model's own tokenizer.",
            field="input_ids",
            value=bad,
        )
    return input_ids.long()


def _vocab_size(model: nn.Module) -> int | None:
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return size
    embed = getattr(model, "embed", None)
    return embed.num_embeddings if isinstance(embed, nn.Embedding) else None


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        if tensor.is_meta:
            raise GenerationError(
                f"The model's weights are on the meta device (e.g. {type(model).__name__} was "
                "built without weights), so it cannot generate. Load a checkpoint into it or "
                "build it on 'cpu' / 'cuda'.",
                field="model",
            )
        return tensor.device
    return torch.device("cpu")


def _free_memory(device: torch.device) -> int | None:
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "cpu":
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError, RuntimeError):
        pass
    return None


def _check_fits(
    model: nn.Module, batch: int, total: int, cache: str | None, device: torch.device
) -> None:
    """Refuse a length whose output ids and KV cache cannot fit, before allocating them."""
    config = getattr(model, "config", None)
    layers, width = getattr(config, "num_layers", 0), getattr(config, "model_dim", 0)
    element = next((p.element_size() for p in model.parameters()), 4)
    per_token = 8 + (2 * layers * width * element if cache is not None else 0)
    need = batch * total * (per_token if isinstance(per_token, int) else 8)
    free = _free_memory(device)
    if free is not None and need > free:
        raise GenerationError(
            f"Generating {total} positions for {batch} row(s) needs about {need / 2**30:.3g} GiB "
            f"for the output and KV cache, but {free / 2**30:.3g} GiB is free on {device}. "
            "Lower max_new_tokens (or the batch size).",
            field="max_new_tokens",
            value=total,
        )


def _fused_by_default(model: nn.Module, device: torch.device) -> bool:
    # On CPU the decode-time copy is faster, but its fused weights cost memory: skip it when a
    # full copy would not fit comfortably in what is free now.
    if device.type != "cpu":
        return False
    # The copies are plain tensors: weights that are tensor subclasses (DTensor shards under
    # tensor parallelism) run unfused.
    if any(type(p.data) is not torch.Tensor for p in model.parameters()):
        return False
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    free = _free_memory(device)
    return free is None or size < free // 2


def _pad_id(model: nn.Module, pad_token_id: int | None, eos_token_id: Any) -> int:
    if pad_token_id is not None:
        return pad_token_id
    config_pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    if isinstance(config_pad, int):
        return config_pad
    eos = eos_ids(eos_token_id)
    return eos[0] if eos else 0
