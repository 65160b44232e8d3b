"""Generation for encoder-decoders: encode the source once, then decode target tokens with an
:class:`~lmhub.nn.encdec_cache.EncoderDecoderCache` (self-attention keys/values grow, the
cross-attention ones are projected once), greedily, by sampling, or by beam search.

Sources may be padded on either side (``attention_mask``); every target starts at the decoder
start token, so targets need no padding. Outputs are the decoder sequences ``[batch, 1 + new]``
starting with that token, as transformers' ``generate()`` returns them; beam search follows
transformers' scoring (length-normalised log-probabilities, its stopping heuristic), so both
give the same tokens.

Example:
    >>> out = generate_seq2seq(model, src_ids, attention_mask=src_mask, max_new_tokens=20,
    ...                        num_beams=4)
    >>> tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import GenerationError
from lmhub.generation.sampling import next_token
from lmhub.generation.stopping import eos_ids
from lmhub.nn.encdec_cache import EncoderDecoderCache

_NEG = -1.0e9  # transformers' "never" score: far below any sum of log-probabilities


def is_encoder_decoder(model: nn.Module) -> bool:
    """Whether ``model`` is an lmhub encoder-decoder (it has ``encode``/``decode``)."""
    return bool(getattr(type(model), "is_encoder_decoder", False))


def generate_seq2seq(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    num_beams: int = 1,
    length_penalty: float = 1.0,
    early_stopping: bool | Literal["never"] = False,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Generate target sequences for the sources ``input_ids`` ``[batch, src]``.

    Args:
        max_new_tokens: the most tokens to add after the decoder start token.
        attention_mask: ``[batch, src]``, 0 for source padding (either side).
        num_beams: 1 decodes one hypothesis per row (greedy, or sampled with ``temperature``);
            more runs beam search and returns each row's best finished hypothesis.
        length_penalty: beam scores are ``sum log p / length ** length_penalty``.
        early_stopping: beam search stops a row once it has ``num_beams`` finished hypotheses
            (``True``), when no running beam can still beat them by transformers' heuristic
            (``False``), or by its optimistic bound (``"never"``).
        temperature, top_k, top_p: sampling settings as in :func:`lmhub.generate` (greedy at 0).
        eos_token_id: ends a row; defaults to the model config's EOS id.
        pad_token_id: fills finished rows; defaults to the config's padding id.
        decoder_start_token_id: the first decoder input; defaults to the config's.
        generator: the random generator for sampling.

    Raises:
        GenerationError: for invalid settings or inputs, naming the argument.
    """
    config = model.config
    _check(input_ids, attention_mask, max_new_tokens, num_beams, temperature, config.vocab_size)
    start = decoder_start_token_id
    start = start if start is not None else config.decoder_start_token_id
    if num_beams == 1:
        steps = stream_seq2seq(
            model, input_ids, max_new_tokens=max_new_tokens, attention_mask=attention_mask,
            temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=eos_token_id,
            pad_token_id=pad_token_id, decoder_start_token_id=start, generator=generator,
        )  # fmt: skip
        first = torch.full(
            (input_ids.shape[0], 1), start, dtype=torch.long, device=input_ids.device
        )
        return torch.cat([first, *(t[:, None] for t in steps)], dim=1)
    eos = eos_ids(eos_token_id if eos_token_id is not None else config.eos_token_id)
    pad = pad_token_id if pad_token_id is not None else config.pad_token_id
    with torch.inference_mode():
        memory = model.encode(input_ids, attention_mask=attention_mask)
        return _beam_search(
            model, memory, attention_mask, max_new_tokens, eos, pad, start,
            num_beams, length_penalty, early_stopping,
        )  # fmt: skip


def check_seq2seq_options(stop: object, repetition_penalty: float | None) -> None:
    """Refuse the decoder-only options seq2seq generation does not implement.

    Raises:
        GenerationError: naming ``stop`` or ``repetition_penalty``.
    """
    if stop is not None or repetition_penalty is not None:
        field = "stop" if stop is not None else "repetition_penalty"
        raise GenerationError(
            f"{field} is not supported for encoder-decoder models. Leave it unset (generation "
            "ends at the EOS id).",
            field=field,
        )


def _check(
    input_ids: Any,
    attention_mask: Any,
    max_new_tokens: Any,
    num_beams: Any,
    temperature: float,
    vocab_size: int,
) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or 0 in input_ids.shape:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else None
        raise GenerationError(
            f"input_ids must be a non-empty LongTensor [batch, src], not {shape or input_ids!r}.",
            field="input_ids",
        )
    if input_ids.min() < 0 or input_ids.max() >= vocab_size:
        raise GenerationError(
            f"input_ids holds ids outside the model's vocabulary of {vocab_size}. Encode the "
            "source with the model's tokenizer.",
            field="input_ids",
        )
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise GenerationError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, but input_ids has "
            f"{tuple(input_ids.shape)}. Pass one mask entry per source token.",
            field="attention_mask",
        )
    for name, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GenerationError(
                f"{name} must be a positive integer, not {value!r}.", field=name, value=value
            )
    if num_beams > 1 and temperature != 0.0:
        raise GenerationError(
            f"num_beams is {num_beams} and temperature {temperature}: beam search is "
            "deterministic. Sample with num_beams=1, or set temperature=0.",
            field="num_beams",
            value=num_beams,
        )


def stream_seq2seq(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Like :func:`generate_seq2seq` with one beam, but yield each step's new tokens
    ``[batch]`` as they are made (rows that have stopped yield the pad id); the loop ends when
    every row has stopped or ``max_new_tokens`` were made."""
    config = model.config
    _check(input_ids, attention_mask, max_new_tokens, 1, temperature, config.vocab_size)
    eos = eos_ids(eos_token_id if eos_token_id is not None else config.eos_token_id)
    pad = pad_token_id if pad_token_id is not None else config.pad_token_id
    fill = pad if pad is not None else (eos[0] if eos else 0)
    start = decoder_start_token_id
    start = start if start is not None else config.decoder_start_token_id
    sampling: dict[str, Any] = dict(
        temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
    )
    # Inference mode per step only, so the caller's code between two tokens runs with its own.
    with torch.inference_mode():
        memory = model.encode(input_ids, attention_mask=attention_mask)
        b, dev = memory.shape[0], memory.device
        eos_t = torch.tensor(eos, dtype=torch.long, device=dev)
        done = torch.zeros(b, dtype=torch.bool, device=dev)
        step_in = torch.full((b, 1), start, dtype=torch.long, device=dev)
    cache = EncoderDecoderCache()
    for _ in range(max_new_tokens):
        with torch.inference_mode():
            logits = model.decode(step_in, memory, memory_mask=attention_mask, cache=cache)
            tokens = next_token(logits[:, -1].float(), **sampling).masked_fill(done, fill)
            done |= torch.isin(tokens, eos_t)
        yield tokens
        if done.all():
            return
        step_in = tokens[:, None]


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[row, index[row, j]]`` for ``t`` ``[batch, n, ...]`` and ``index`` ``[batch, k]``."""
    shape = index.shape + (1,) * (t.ndim - 2)
    return torch.gather(t, 1, index.view(shape).expand(*index.shape, *t.shape[2:]))


def _beam_search(
    model: Any,
    memory: torch.Tensor,
    mask: torch.Tensor | None,
    max_new_tokens: int,
    eos: list[int],
    pad: int | None,
    start: int,
    num_beams: int,
    length_penalty: float,
    early_stopping: bool | Literal["never"],
) -> torch.Tensor:
    """Beam search with transformers' bookkeeping (``GenerationMixin._beam_search``): the top
    ``2 * num_beams`` continuations per row, finished ones scored with the length penalty and
    merged into the row's ``num_beams`` best, the rest continuing."""
    b, dev = memory.shape[0], memory.device
    nb, max_len = num_beams, 1 + max_new_tokens
    keep = max(2, 1 + len(eos)) * nb
    # transformers fills finished sequences with the padding id, or the EOS id if that is 0.
    fill = pad or (eos[0] if eos else -1)
    memory = memory.repeat_interleave(nb, dim=0)
    mask = None if mask is None else mask.repeat_interleave(nb, dim=0)
    running = torch.full((b, nb, max_len), fill, dtype=torch.long, device=dev)
    running[:, :, 0] = start
    finished = running.clone()
    running_scores = torch.zeros(b, nb, device=dev)
    running_scores[:, 1:] = _NEG  # the beams start identical: expand the first one only
    scores = torch.full((b, nb), _NEG, device=dev)
    is_finished = torch.zeros(b, nb, dtype=torch.bool, device=dev)
    lengths = torch.zeros(b, nb, dtype=torch.long, device=dev)  # new tokens per finished beam
    improvable = torch.ones(b, 1, dtype=torch.bool, device=dev)
    top_mask = torch.arange(keep, device=dev) < nb
    eos_t = torch.tensor(eos, dtype=torch.long, device=dev)
    cache = EncoderDecoderCache()
    cur = 1
    while True:
        step_in = running[:, :, cur - 1].reshape(b * nb, 1)
        logits = model.decode(step_in, memory, memory_mask=mask, cache=cache)[:, -1].float()
        log_probs = F.log_softmax(logits, dim=-1).view(b, nb, -1) + running_scores[:, :, None]
        vocab = log_probs.shape[-1]
        top_lp, top_idx = torch.topk(log_probs.view(b, -1), k=keep)
        beam, token = top_idx // vocab, top_idx % vocab
        cand = _gather(running, beam)
        cand[:, :, cur] = token
        hits = torch.isin(token, eos_t) | (cur + 1 >= max_len)
        # Finished candidates among the top num_beams join the row's best finished ones.
        just_done = hits & top_mask[None, :]
        done_lp = top_lp / ((cur + 1 - 1) ** length_penalty)
        if early_stopping is True:
            done_lp = done_lp + is_finished.all(-1, keepdim=True).float() * _NEG
        done_lp = done_lp + (~improvable).float() * _NEG + (~just_done).float() * _NEG
        merged = torch.topk(torch.cat([scores, done_lp], dim=1), k=nb)[1]
        finished = _gather(torch.cat([finished, cand], dim=1), merged)
        scores = _gather(torch.cat([scores, done_lp], dim=1), merged)
        is_finished = _gather(torch.cat([is_finished, just_done], dim=1), merged)
        new_len = torch.full_like(just_done, cur, dtype=torch.long)
        lengths = _gather(torch.cat([lengths, new_len], dim=1), merged)
        # The best unfinished candidates run on.
        run_lp = top_lp + hits.float() * _NEG
        chosen = torch.topk(run_lp, k=nb)[1]
        running = _gather(cand, chosen)
        running_scores = _gather(run_lp, chosen)
        offsets = torch.arange(b, device=dev)[:, None] * nb
        cache.reorder((_gather(beam, chosen) + offsets).flatten())
        cur += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_len - 1
        else:
            best_len = cur - 1
        best_running = running_scores[:, :1] / (best_len**length_penalty)
        worst_done = torch.where(is_finished, scores.min(dim=1, keepdim=True)[0], _NEG)
        improvable = improvable & (best_running > worst_done).any(dim=-1, keepdim=True)
        all_full = bool(is_finished.all()) and early_stopping is True
        if not improvable.any() or all_full or bool(hits.all()):
            break
    best = finished[:, 0]
    return best[:, : 1 + int(lengths[:, 0].max())]
