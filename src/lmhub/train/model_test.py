"""The forward/backward smoke test behind ``lmhub model test``.

Builds or loads a model, then runs a few optimizer steps of next-token prediction (for an
encoder family: of masked tokens, see :func:`masked_tokens`) on random tokens (or on a text
file), reporting the loss of every step, the logits shape, the parameter count, tokens/s and
peak memory. A NaN or infinite loss stops the test with
:class:`~lmhub.errors.NonFiniteLossError`.

Example:
    >>> result = run_model_test("llama_tiny", ModelTestOptions(steps=2, sequence_length=32))
    >>> result.losses
    [5.58, 5.41]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmhub.errors import (
    ConfigError,
    LmhubError,
    NonFiniteLossError,
    TokenizerError,
)
from lmhub.train.checkpointing import disable_gradient_checkpointing, enable_gradient_checkpointing
from lmhub.train.memory import describe_peak, peak_memory_bytes, reset_peak_memory
from lmhub.train.optim_in_backward import fuse_optimizer_with_backward
from lmhub.utils import as_device, as_dtype


@dataclass(kw_only=True)
class ModelTestOptions:
    """What ``lmhub model test`` runs."""

    batch_size: int = 2
    """Sequences per step."""

    sequence_length: int = 128
    """Tokens per sequence."""

    steps: int = 3
    """Optimizer steps to run."""

    lr: float = 1e-4
    """The learning rate."""

    optimizer: Literal["adamw", "sgd"] = "adamw"
    """The optimizer: AdamW (weight decay 0.01) or plain SGD."""

    dtype: str = "float32"
    """The dtype of the parameters and activations."""

    device: str = "cpu"
    """Where to run: ``cpu``, ``cuda``, ``cuda:1``, ..."""

    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of storing them."""

    fuse_optim_with_backward: bool = False
    """Step each parameter from a post-accumulate-grad hook and free its gradient at once."""

    data: Path | None = None
    """A UTF-8 text file to train on; ``None`` for uniformly random tokens."""

    tokenizer: str | None = None
    """The tokenizer for ``data``: ``"byte"``, or a path; ``None`` picks the model's own
    tokenizer when it has one, else the byte tokenizer."""

    seed: int = 0
    """Seeds the random weights and the random tokens."""

    def validate(self) -> None:
        """Raise :class:`~lmhub.errors.ConfigError` for values that cannot run."""
        for name in ("batch_size", "sequence_length", "steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"'{name}' must be positive, not {getattr(self, name)}.",
                    field=name,
                    value=getattr(self, name),
                )
        if not self.lr > 0:
            raise ConfigError(f"'lr' must be positive, not {self.lr}.", field="lr", value=self.lr)
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(
                f"'optimizer' must be 'adamw' or 'sgd', not '{self.optimizer}'.",
                field="optimizer",
                value=self.optimizer,
            )
        device = as_device(self.device)
        if device.type == "meta":
            raise ConfigError(
                "The device 'meta' holds no data, so nothing can be trained on it. Use 'cpu' or "
                "'cuda'.",
                field="device",
                value=self.device,
            )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"The device '{self.device}' was asked for, but CUDA is not available here. "
                "Use --device cpu.",
                field="device",
                value=self.device,
            )
        as_dtype(self.dtype)  # raises ConfigError for an unknown dtype name
        if self.data is not None and not Path(self.data).is_file():
            raise ConfigError(
                f"The data file {self.data} does not exist. Pass a UTF-8 text file.",
                field="data",
                value=str(self.data),
            )


@dataclass(kw_only=True)
class ModelTestResult:
    """What a model test measured."""

    losses: list[float] = field(default_factory=list)
    """The loss of every step, in order."""

    logits_shape: tuple[int, ...] = ()
    """The shape of the last step's logits ``(batch, seq, vocab)``."""

    num_parameters: int = 0
    """Trainable and frozen parameters, each shared tensor counted once."""

    tokens_per_second: float = 0.0
    """Training throughput over the timed steps (all but the first when there are several)."""

    peak_memory_bytes: int = 0
    """Peak memory during the steps (CUDA: max allocated; CPU: peak RSS of the process)."""


@dataclass(kw_only=True)
class ResolvedModel:
    """A model built or loaded for a test, with what is known about it."""

    model: nn.Module
    label: str
    tokenizer_source: str | None = None


def resolve_model(
    name: str, *, device: torch.device | str = "cpu", dtype: torch.dtype | str | None = None
) -> ResolvedModel:
    """Build or load ``name`` as :func:`lmhub.models.resolve.resolve_model_source` resolves it:
    a checkpoint directory, a card (its weights where they are on this machine) or an
    architecture preset (random weights).

    Example:
        >>> resolve_model("llama_tiny").model.config.model_dim
        256
    """
    from lmhub.models.resolve import instantiate, resolve_model_source

    source = resolve_model_source(name)
    model = instantiate(source, device=device, dtype=dtype)
    return ResolvedModel(model=model, label=source.label, tokenizer_source=source.tokenizer)


def vocab_size_of(model: nn.Module) -> int:
    """Return the model's vocabulary size (``config.vocab_size``, else its first embedding's)."""
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(size, int):
        return size
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            return module.num_embeddings
    raise ValueError(f"Cannot tell the vocabulary size of {type(model).__name__}.")


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters, counting tied (shared) tensors once."""
    return sum(p.numel() for p in model.parameters())


def _load_data_tokenizer(choice: str | None, source: str | None) -> Any:
    from lmhub.data.tokenizers import ByteTokenizer, load_tokenizer

    if choice is not None:
        return load_tokenizer(choice)
    if source is None:
        return ByteTokenizer()
    from lmhub.assets.hf_cache import local_path

    try:
        location = str(local_path(source))
    except (LmhubError, OSError):
        return ByteTokenizer()
    try:
        return load_tokenizer(location)
    except TokenizerError:
        return ByteTokenizer()


def text_batches(
    path: Path, tokenizer: Any, *, batch_size: int, sequence_length: int, vocab_size: int
) -> Iterator[torch.Tensor]:
    """Yield ``[batch, seq + 1]`` windows of the tokenized file, in order, wrapping around.

    Only as much of the file is read as the batches of one pass need (a text file of many GB
    is fine). Ids the model's vocabulary cannot hold are an error.
    """
    window = sequence_length + 1
    # Read in chunks until there are enough tokens for one batch, then cycle what was read.
    ids: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        while len(ids) < batch_size * window:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            ids.extend(tokenizer.encode(chunk))
    if len(ids) < window:
        raise ConfigError(
            f"{path} holds only {len(ids)} tokens, fewer than one sequence of "
            f"{window}. Use a longer file or a shorter --sequence-length.",
            field="data",
            value=str(path),
        )
    too_big = max(ids)
    if too_big >= vocab_size:
        raise TokenizerError(
            f"The tokenizer produced id {too_big}, but the model's vocabulary has only "
            f"{vocab_size} entries. Pick a tokenizer that matches the model (--tokenizer).",
            path=path,
        )
    tokens = torch.tensor(ids, dtype=torch.long)
    rows = tokens[: (len(ids) // window) * window].view(-1, window)
    start = 0
    while True:
        index = torch.arange(start, start + batch_size) % rows.shape[0]
        start += batch_size
        yield rows[index]


def random_batches(
    *, batch_size: int, sequence_length: int, vocab_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Yield ``[batch, seq + 1]`` uniformly random token ids, reproducibly from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randint(0, vocab_size, (batch_size, sequence_length + 1), generator=generator)


MASK_FRACTION = 0.15
"""The share of positions an encoder's test corrupts and predicts (BERT's 15%)."""


def masked_tokens(
    ids: torch.Tensor, vocab_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(inputs, targets)`` for a masked-token test step of a bidirectional encoder:
    :data:`MASK_FRACTION` of the positions (at least one per row) get a random id, and only
    those are predicted (the rest of ``targets`` is -100). A next-token objective would be no
    test for an encoder, which sees the token it is asked for.

    Example:
        >>> inputs, targets = masked_tokens(ids, 259, torch.Generator().manual_seed(0))
    """
    picked = torch.rand(ids.shape, generator=generator) < MASK_FRACTION
    picked[~picked.any(dim=1), 0] = True
    noise = torch.randint(0, vocab_size, ids.shape, generator=generator).to(ids.device)
    picked = picked.to(ids.device)
    return torch.where(picked, noise, ids), torch.where(picked, ids, -100)


def _is_encoder(module: nn.Module) -> bool:
    from lmhub.models.registry import family_of

    family = family_of(module)
    return family is not None and family.kind == "encoder"


def _make_optimizer(kind: str, lr: float) -> Callable[[Any], torch.optim.Optimizer]:
    if kind == "sgd":
        return lambda params: torch.optim.SGD(params, lr=lr)
    return lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def _train_steps(
    module: nn.Module,
    optimizer: Any,
    batches: Iterator[torch.Tensor],
    options: ModelTestOptions,
    device: torch.device,
    result: ModelTestResult,
    echo: Callable[[str], None],
) -> tuple[tuple[int, ...], int, float]:
    reset_peak_memory(device)
    timed_tokens, timed_seconds = 0, 0.0
    logits_shape: tuple[int, ...] = ()
    masking = torch.Generator().manual_seed(options.seed) if _is_encoder(module) else None
    for step in range(1, options.steps + 1):
        batch = next(batches).to(device)
        if masking is None:
            inputs, targets = batch[:, :-1], batch[:, 1:]
        else:
            inputs, targets = masked_tokens(batch[:, :-1], vocab_size_of(module), masking)
        start = time.perf_counter()
        logits = module(inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        value = float(loss.detach())
        if not math.isfinite(value):  # before backward: a fused optimizer steps inside it
            raise NonFiniteLossError(step, value)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        logits_shape = tuple(logits.shape)
        del logits, loss
        if step > 1 or options.steps == 1:  # the first step warms up kernels and allocators
            timed_tokens += inputs.numel()
            timed_seconds += seconds
        result.losses.append(value)
        echo(f"step {step}/{options.steps}: loss {value:.4f} ({seconds * 1000:.0f} ms)")
    result.peak_memory_bytes = peak_memory_bytes(device)
    return logits_shape, timed_tokens, timed_seconds


def run_model_test(
    model: nn.Module | str,
    options: ModelTestOptions | None = None,
    *,
    echo: Callable[[str], None] = print,
) -> ModelTestResult:
    """Run forward + backward + optimizer steps and report what happened through ``echo``.

    ``model`` is a module (used as it is, on its own device) or a name for
    :func:`resolve_model`. Raises :class:`~lmhub.errors.NonFiniteLossError` before the backward
    of a step whose loss is not finite.

    Example:
        >>> run_model_test("llama_tiny", ModelTestOptions(steps=1, sequence_length=16))
        model: llama_tiny (llama, random weights) ...
    """
    options = options or ModelTestOptions()
    options.validate()
    device = as_device(options.device)
    dtype = as_dtype(options.dtype)
    torch.manual_seed(options.seed)
    tokenizer_source: str | None = None
    if isinstance(model, str):
        resolved = resolve_model(model, device=device, dtype=dtype)
        module, label, tokenizer_source = resolved.model, resolved.label, resolved.tokenizer_source
    else:
        module, label = model, type(model).__name__
        param = next(module.parameters(), None)
        device = param.device if param is not None else device
    vocab_size = vocab_size_of(module)
    result = ModelTestResult(num_parameters=count_parameters(module))
    where = f"{next(module.parameters()).dtype} on {device}".replace("torch.", "")
    echo(f"model: {label}, {result.num_parameters:,} parameters, {where}")

    if options.data is not None:
        tokenizer = _load_data_tokenizer(options.tokenizer, tokenizer_source)
        batches = text_batches(
            Path(options.data),
            tokenizer,
            batch_size=options.batch_size,
            sequence_length=options.sequence_length,
            vocab_size=vocab_size,
        )
        echo(f"data: {options.data} ({type(tokenizer).__name__})")
    else:
        batches = random_batches(
            batch_size=options.batch_size,
            sequence_length=options.sequence_length,
            vocab_size=vocab_size,
            seed=options.seed,
        )
        echo(f"data: random tokens in [0, {vocab_size})")
    extras = []
    if options.gradient_checkpointing:
        extras.append(f"gradient checkpointing over {enable_gradient_checkpointing(module)} layers")
    factory = _make_optimizer(options.optimizer, options.lr)
    if options.fuse_optim_with_backward:
        optimizer: Any = fuse_optimizer_with_backward(module, factory)
        extras.append("optimizer fused with backward")
    else:
        optimizer = factory([p for p in module.parameters() if p.requires_grad])
    if _is_encoder(module):
        extras.append(f"masked tokens ({MASK_FRACTION:.0%} replaced by random ids, predicted)")
    echo(
        f"batch {options.batch_size} x {options.sequence_length} tokens, {options.steps} steps, "
        f"{options.optimizer} lr {options.lr:g}" + "".join(f", {e}" for e in extras)
    )

    module.train()
    try:
        logits_shape, timed_tokens, timed_seconds = _train_steps(
            module, optimizer, batches, options, device, result, echo
        )
    finally:
        # A module passed in leaves as it came: no hooks, no checkpointing wrappers.
        if options.fuse_optim_with_backward:
            optimizer.remove()
        if options.gradient_checkpointing:
            disable_gradient_checkpointing(module)
    result.logits_shape = logits_shape
    result.tokens_per_second = timed_tokens / timed_seconds if timed_seconds > 0 else 0.0
    echo(f"logits shape: {logits_shape}")
    echo(f"parameters: {result.num_parameters:,}")
    echo(f"throughput: {result.tokens_per_second:,.0f} tokens/s")
    echo(f"peak memory: {result.peak_memory_bytes / 2**20:,.1f} MiB ({describe_peak(device)})")
    echo("Test Completed")
    return result
