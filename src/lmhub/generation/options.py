"""The settings of one generation run, as one frozen, validated object.

:func:`~lmhub.generation.generate` and :func:`~lmhub.generation.generate_stream` take these as
keyword arguments and build a :class:`GenerationOptions`; building one yourself checks a set of
settings before any model runs.

Example:
    >>> GenerationOptions(max_new_tokens=20, temperature=0.7, top_p=0.9)
    >>> GenerationOptions(max_new_tokens=20, top_p=1.5)
    Traceback (most recent call last):
    lmhub.errors.GenerationError: top_p is 1.5, but it must be in (0, 1]. ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lmhub.errors import GenerationError
from lmhub.generation.stopping import StopArg, normalize_stop

CacheKind = Literal["static", "dynamic"] | None
CACHE_KINDS: tuple[str | None, ...] = ("static", "dynamic", None)


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """How to continue a prompt: length, sampling, stopping, cache and weights."""

    max_new_tokens: int
    """The most tokens to add; fewer when every row stops early."""

    temperature: float = 0.0
    """0 is greedy (the arg-max); above 0 samples from ``softmax(logits / temperature)``."""

    top_k: int | None = None
    """Sample among the ``top_k`` most likely tokens only (1 is greedy); ``None`` keeps all."""

    top_p: float | None = None
    """Sample among the most likely tokens holding ``top_p`` of the probability, in (0, 1]."""

    repetition_penalty: float | None = None
    """Above 1 makes tokens already in the row less likely (as in Hugging Face); > 0."""

    eos_token_id: int | tuple[int, ...] | None = None
    """Token id(s) that end a row (a sequence is stored as a tuple); ``None`` never stops early."""

    stop: StopArg = None
    """Stop strings and/or token-id sequences, looked for in the new tokens (strings need a
    tokenizer)."""

    pad_token_id: int | None = None
    """Fills rows after they stop; ``None``: the model config's, else the first EOS id, else 0."""

    cache: CacheKind = "static"
    """``"static"`` (preallocated), ``"dynamic"`` (grown) or ``None`` (recompute every step)."""

    fused_weights: bool | None = None
    """Run the model's decode-time copy (:mod:`lmhub.nn.decode_weights`); ``None`` turns it on
    for models on the CPU when a copy fits in half the free memory."""

    compile_decode: bool = False
    """Run each decode step through ``torch.compile`` (:mod:`lmhub.generation.compiled`); the
    first call of a process compiles (tens of seconds on a CPU), and a step that cannot be
    compiled runs eagerly. Static caches only; other caches always run eagerly."""

    def __post_init__(self) -> None:
        _check_int("max_new_tokens", self.max_new_tokens, minimum=0)
        _check_real("temperature", self.temperature, "must be >= 0; use 0 for greedy decoding")
        if not self.temperature >= 0.0:
            _fail("temperature", self.temperature, "must be >= 0. Use 0 for greedy decoding")
        if self.top_k is not None:
            _check_int("top_k", self.top_k, minimum=1, hint="Leave it unset to keep every token.")
        if self.top_p is not None:
            _check_real("top_p", self.top_p, "must be in (0, 1]")
            if not 0.0 < self.top_p <= 1.0:
                _fail("top_p", self.top_p, "must be in (0, 1]. Leave it unset to keep every token")
        if self.repetition_penalty is not None:
            _check_real("repetition_penalty", self.repetition_penalty, "must be > 0")
            if not self.repetition_penalty > 0.0:
                _fail(
                    "repetition_penalty",
                    self.repetition_penalty,
                    "must be > 0 (1 changes nothing; above 1 discourages repeats)",
                )
        if self.eos_token_id is not None:
            object.__setattr__(self, "eos_token_id", _token_ids("eos_token_id", self.eos_token_id))
        if self.pad_token_id is not None:
            _check_int("pad_token_id", self.pad_token_id, minimum=0)
        normalize_stop(self.stop)  # raises GenerationError for a malformed entry
        if not isinstance(self.cache, str | None) or self.cache not in CACHE_KINDS:
            _fail("cache", self.cache, "must be one of 'static', 'dynamic' or None")
        if self.fused_weights is not None and not isinstance(self.fused_weights, bool):
            _fail("fused_weights", self.fused_weights, "must be True, False or None")
        if not isinstance(self.compile_decode, bool):
            _fail("compile_decode", self.compile_decode, "must be True or False")


def _fail(field: str, value: Any, rule: str) -> None:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise GenerationError(f"{field} is {shown}, but it {rule}.", field=field, value=value)


def _check_int(
    field: str, value: Any, *, minimum: int, maximum: int = 2**63 - 1, hint: str = ""
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, value, f"must be an int (got a {type(value).__name__})")
    if value < minimum:
        _fail(field, value, f"must be at least {minimum}. {hint}".rstrip(". ").rstrip())
    if value > maximum:
        _fail(field, value, f"must be at most {maximum}")


def _check_real(field: str, value: Any, rule: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(field, value, f"{rule}, and be a number (got a {type(value).__name__})")
    if isinstance(value, float) and math.isnan(value):
        _fail(field, value, rule)
    if isinstance(value, int) and abs(value) > 2**53:
        _fail(field, value, f"{rule}, and be a float-sized number")


def _token_ids(field: str, value: Any) -> int | tuple[int, ...]:
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        _check_int(field, value, minimum=0)
        return value
    if isinstance(value, Sequence | torch.Tensor) and not isinstance(value, str):
        ids = tuple(value)
        for t in ids:
            _check_int(field, int(t) if isinstance(t, torch.Tensor) else t, minimum=0)
        return tuple(int(t) for t in ids)
    _fail(field, value, "must be a token id (an int >= 0), a sequence of them, or None")
    raise AssertionError  # unreachable: _fail raises
