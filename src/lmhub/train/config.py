"""The training config: a tree of ``@dataclass(kw_only=True)`` configs, one docstring per field.

It is read from YAML with :func:`lmhub.config.from_yaml`, changed with the typed dotted overrides
of :func:`lmhub.config.apply_overrides` (``optimizer.lr=1e-3``), and saved with
:func:`lmhub.config.to_yaml` as ``OUTPUT_DIR/config.yaml``.

Example:
    >>> cfg = apply_overrides(TrainConfig(), ["max_steps=10", "lr_schedule.kind=constant"])
    >>> cfg.max_steps, cfg.lr_schedule.kind
    (10, 'constant')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lmhub.errors import ConfigError
from lmhub.parallel.config import ParallelConfig
from lmhub.peft.config import LoraConfig

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "EvalConfig",
    "EvalLoaderConfig",
    "LogConfig",
    "LoraTrainConfig",
    "LrScheduleConfig",
    "OptimizerConfig",
    "TrainConfig",
    "check_train_config",
]

Precision = Literal["fp32", "bf16-mixed", "bf16"]


@dataclass(kw_only=True)
class DataConfig:
    """Where the training and validation data are, and how they become batches."""

    train: str = ""
    """A ``.txt`` or ``.jsonl`` file, a directory of them, or a ``datasets`` folder. Text
    (``{"text": ...}``) is packed into rows of ``seq_len``; ``{"prompt", "target"}`` pairs train
    with the loss on the target only."""
    valid: str | None = None
    """Validation data in the same forms; ``None`` holds out ``valid_fraction`` of ``train``."""
    test: str | None = None
    """Test data in the same forms (``None``: no test split). Test loaders run at the end of
    training and in ``lmhub eval``."""
    valid_fraction: float = 0.0
    """Fraction of the training examples held out for validation when ``valid`` is not given
    (0: no validation)."""
    doc_separator: str | None = None
    """Split plain text files into documents at this string (``None``: one per file)."""
    add_bos: bool | None = None
    """Start each text (each prompt) with BOS; ``None`` follows the tokenizer."""
    add_eos: bool | None = None
    """End each text (each target) with EOS; ``None``: whenever the tokenizer has one."""
    cache_dir: str | None = None
    """Where tokenised data is cached (``None``: ``$LMHUB_CACHE_DIR/tokens``)."""


@dataclass(kw_only=True)
class OptimizerConfig:
    """AdamW's settings."""

    lr: float = 3e-4
    """The peak learning rate (reached at the end of the warmup)."""
    weight_decay: float = 0.1
    """Decoupled weight decay of matrices, embeddings included (norm weights and biases take
    none)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """Adam's moment decay rates."""
    eps: float = 1e-8
    """Adam's epsilon."""
    grad_clip: float | None = 1.0
    """Clip the gradients' global L2 norm to this (``None``: no clipping)."""
    in_backward: bool = False
    """Step each parameter during the backward pass (saves gradient memory); needs
    ``grad_accum_steps=1`` and ``grad_clip: null``."""


@dataclass(kw_only=True)
class LrScheduleConfig:
    """The learning-rate schedule: a linear warmup, then a decay to a floor."""

    kind: Literal["cosine", "linear", "constant"] = "cosine"
    """The shape after the warmup: ``cosine`` or ``linear`` decay, or ``constant``."""
    warmup_steps: int = 0
    """Steps of linear warmup from 0 to ``optimizer.lr``."""
    min_lr_ratio: float = 0.1
    """The floor the decay ends at, as a fraction of ``optimizer.lr``."""


@dataclass(kw_only=True)
class CheckpointConfig:
    """When checkpoints are written and how many are kept."""

    every_steps: int = 0
    """Write ``OUTPUT_DIR/checkpoints/step_N/`` every this many steps (0: only at the end)."""
    keep_last: int = 3
    """Keep this many most recent checkpoints (0 keeps all)."""
    register_cards: bool = True
    """Also register the run's cards (``RUN@last``, ``RUN@step_N``) in the user card folder
    (``$LMHUB_CARDS_DIR``, else ``~/.config/lmhub/cards``), so every command finds them."""


@dataclass(kw_only=True)
class EvalLoaderConfig:
    """One named evaluation loader: its metrics are logged as ``<split>/<name>/<metric>``."""

    name: str
    """The loader's name in the metrics and in ``predictions/<split>/<name>/``."""
    kind: Literal["lm", "prediction"]
    """``lm`` batches go to the loss function (loss, perplexity), ``prediction`` batches to the
    predictor (exact match, token accuracy, predictions as JSON lines)."""
    split: Literal["valid", "test"] = "valid"
    """``valid`` runs every ``eval.every_steps`` and at the end; ``test`` at the end only (and in
    ``lmhub eval``)."""
    data: str | None = None
    """The loader's own data file or directory (``None``: the split's, ``data.valid`` or the
    held-out part of ``data.train`` for ``valid``, ``data.test`` for ``test``)."""


@dataclass(kw_only=True)
class EvalConfig:
    """Validation during training."""

    every_steps: int = 0
    """Validate every this many steps, and at the end (0: only at the end)."""
    max_batches: int | None = None
    """Validate on at most this many batches (``None``: all the validation data)."""
    batch_size: int | None = None
    """Validation batch size (``None``: ``batch_size``)."""
    max_new_tokens: int = 64
    """The most tokens the predictor generates per seq2seq example."""
    loaders: list[EvalLoaderConfig] = field(default_factory=list)
    """The evaluation loaders (empty: for each split that has data, a loader ``lm`` and, for
    seq2seq data, a loader ``prediction``)."""


@dataclass(kw_only=True)
class LogConfig:
    """Where and how often metrics are reported."""

    every_steps: int = 10
    """Write a metrics row (and a progress line) every this many steps."""
    progress: Literal["auto", "bar", "plain", "none"] = "auto"
    """``bar`` is a rich progress bar, ``plain`` one line per log; ``auto`` picks the bar on a
    terminal."""
    tensorboard: bool = False
    """Also write TensorBoard event files to ``OUTPUT_DIR/tensorboard`` (needs the optional
    ``tensorboard`` package)."""


@dataclass(kw_only=True)
class LoraTrainConfig(LoraConfig):
    """LoRA fine-tuning: :class:`~lmhub.peft.LoraConfig`'s fields (``rank``, ``alpha``,
    ``dropout``, ``targets``, ``use_rslora``, ``use_dora``), applied to the model once it is
    loaded and before the optimizer is built, so only the adapters train."""

    merge_on_export: bool = False
    """Also fold the adapters into the base weights at the end and export the merged model as
    ``OUTPUT_DIR/final/`` (an ordinary HF directory, as a full run writes) beside
    ``final/adapter/``; ``RUN@last`` then names the merged model."""


@dataclass(kw_only=True)
class TrainConfig:
    """Everything ``lmhub train`` needs: the model, the data, the loop and the outputs."""

    model: str = "llama_tiny"
    """What to train: an architecture preset (random weights), a card, or a checkpoint
    directory (fine-tuning)."""
    model_config: dict[str, Any] = field(default_factory=dict)
    """Overrides of the model's config fields, e.g. ``{num_layers: 2}``."""
    tokenizer: str | None = None
    """A tokenizer file or directory, or ``byte``; ``None`` takes the model's own (a checkpoint
    directory's or a card's), else the byte tokenizer."""
    lm_type: str = "arlm"
    """The kind of language model, which picks the collators, loss, predictor, metrics and the
    backbone's attention mode: ``arlm``, ``mlm``, ``seq2seq`` (encoder-decoders on prompt/target
    data; ``lmhub.lm.registry`` lists them all), or a module path whose ``LM_TYPE`` is an
    ``LmType``."""
    lm_options: dict[str, Any] = field(default_factory=dict)
    """The LM type's own settings (e.g. ``{mask_prob: 0.15, predict_steps: 8}`` for ``mlm``),
    checked against its options dataclass."""
    data: DataConfig = field(default_factory=DataConfig)
    """The training and validation data."""
    seq_len: int = 256
    """Tokens per packed text row; the most tokens per seq2seq example."""
    batch_size: int = 8
    """Rows per micro-batch."""
    grad_accum_steps: int = 1
    """Micro-batches per optimiser step; the loss is normalised by the target tokens of all of
    them, so ``k`` micro-batches of ``b`` equal one batch of ``k * b``."""
    max_steps: int = 100
    """Optimiser steps to train for."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    """AdamW's settings."""
    lr_schedule: LrScheduleConfig = field(default_factory=LrScheduleConfig)
    """The learning-rate schedule."""
    precision: Precision = "fp32"
    """``fp32``; ``bf16-mixed`` (fp32 weights, bf16 autocast); or ``bf16`` (bf16 weights)."""
    lora: LoraTrainConfig | None = None
    """Fine-tune LoRA adapters instead of every weight (``None``: full fine-tuning). Checkpoints
    then hold only the adapters and their optimizer state; ``OUTPUT_DIR/final/adapter/`` is a
    PEFT adapter directory."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (less memory, more compute)."""
    compile: bool = False
    """Compile each layer's training forward and backward with ``torch.compile`` (inductor):
    fused elementwise work and fewer saved activations. The first step pays the compile (tens
    of seconds on a CPU). Evaluation and prediction run eagerly. On the 58M benchmark model:
    1.28x transformers' fp32 speed at 0.59x its peak RSS (eagerly: 0.72x)."""
    malloc_mmap_threshold_mib: float | None = None
    """On Linux with glibc, serve host allocations of at least this many MiB from their own
    memory maps, returned to the system when freed (``None``: leave malloc as it is). glibc
    otherwise raises the threshold after the first freed activation and serves later ones from
    a heap that fragments, so a training process holds several hundred MiB it no longer uses.
    ``1`` cut the 58M benchmark's peak RSS by 17% but cost 20-55% of the step time (every
    re-allocation faults its pages in again): a setting for memory-bound runs, off by default."""
    device: str = "cpu"
    """Where to train: ``cpu``, ``cuda``, ``cuda:1``, ..."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """How the processes of a torchrun launch split the work (tensor parallel, FSDP2 shards,
    replicas, mixed precision); ignored by a single process."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpointing."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Validation."""
    log: LogConfig = field(default_factory=LogConfig)
    """Metrics and progress."""
    output_dir: str = "runs/run"
    """Where the run writes config.yaml, metrics.jsonl, checkpoints/ and final/."""
    run_name: str | None = None
    """The run's name in its cards (``NAME@last``); ``None``: the output directory's name."""
    seed: int = 0
    """Seeds the model's initialisation, the data order and every random draw."""
    debug: Literal["overfit", "smoke"] | None = None
    """``overfit``: train on one batch (the first ``overfit_batch_size`` examples) and validate
    on that same batch (an LM type whose exact match does not reach 1.0 there is broken);
    ``smoke``: a few steps on the CPU, one evaluation batch per loader. ``None``: a normal run."""
    overfit_batch_size: int = 1
    """The rows of the one batch of ``debug: overfit``."""
    resume: str = "auto"
    """``auto`` continues from the last complete checkpoint in ``output_dir`` if any; ``never``
    starts over (an output directory with checkpoints is then an error); or a checkpoint
    directory's path."""


def check_train_config(config: TrainConfig) -> None:
    """Refuse values no run can use, naming the field (types are already checked on parsing).

    Raises:
        ConfigError: for the first bad value.
    """
    positive = {
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "grad_accum_steps": config.grad_accum_steps,
        "max_steps": config.max_steps,
        "log.every_steps": config.log.every_steps,
        "overfit_batch_size": config.overfit_batch_size,
    }
    at_least_zero = {
        "lr_schedule.warmup_steps": config.lr_schedule.warmup_steps,
        "checkpoint.every_steps": config.checkpoint.every_steps,
        "checkpoint.keep_last": config.checkpoint.keep_last,
        "eval.every_steps": config.eval.every_steps,
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(
                f"The field '{name}' is {value}; it must be at least 1.", field=name, value=value
            )
    for name, value in at_least_zero.items():
        if value < 0:
            raise ConfigError(
                f"The field '{name}' is {value}; it must be 0 or more.", field=name, value=value
            )
    threshold = config.malloc_mmap_threshold_mib
    if threshold is not None and not 0 < threshold <= 32:
        raise ConfigError(
            f"The field 'malloc_mmap_threshold_mib' is {threshold}; glibc takes a threshold "
            "above 0 and at most 32 MiB. Set it in that range, or to null to leave malloc alone.",
            field="malloc_mmap_threshold_mib",
            value=threshold,
        )
    if config.optimizer.lr <= 0:
        raise ConfigError(
            f"The field 'optimizer.lr' is {config.optimizer.lr}; it must be above 0.",
            field="optimizer.lr",
            value=config.optimizer.lr,
        )
    if not 0.0 <= config.lr_schedule.min_lr_ratio <= 1.0:
        raise ConfigError(
            f"The field 'lr_schedule.min_lr_ratio' is {config.lr_schedule.min_lr_ratio}; it must "
            "be between 0 and 1.",
            field="lr_schedule.min_lr_ratio",
            value=config.lr_schedule.min_lr_ratio,
        )
    if not config.data.train:
        raise ConfigError(
            "The field 'data.train' is empty. Set it to a data file or directory, e.g. "
            "data.train=corpus.txt.",
            field="data.train",
        )
    if config.lora is not None:
        try:
            config.lora.validate()
        except ConfigError as exc:
            raise ConfigError(
                f"In the train config's 'lora' section (lora.{exc.field}): {exc}",
                field=f"lora.{exc.field}",
                value=exc.value,
            ) from None
    check_parallel_train_config(config)
    if config.optimizer.in_backward and (
        config.grad_accum_steps != 1 or config.optimizer.grad_clip is not None
    ):
        raise ConfigError(
            "optimizer.in_backward steps every parameter during the backward pass, so it cannot "
            "accumulate gradients or clip their global norm. Set grad_accum_steps=1 and "
            "optimizer.grad_clip=null, or optimizer.in_backward=false.",
            field="optimizer.in_backward",
            value=True,
        )


def check_parallel_train_config(config: TrainConfig, dp_size: int = 1) -> None:
    """Refuse what a sharded run cannot do: a batch that does not split over ``dp_size``
    data-parallel ranks, (when anything is sharded) LoRA and optimizer-in-backward, and
    ``compile`` with tensor parallelism (torch 2.13's DTensor redistribution fails in the
    compiled backward; FSDP2 alone compiles).

    Raises:
        ConfigError: naming the field.
    """
    if config.batch_size % dp_size != 0:
        raise ConfigError(
            f"The field 'batch_size' is {config.batch_size}, which does not split over "
            f"{dp_size} data-parallel ranks. Set batch_size to a multiple of {dp_size} (it is "
            "the whole batch of all ranks).",
            field="batch_size",
            value=config.batch_size,
        )
    par = config.parallel
    sharded = dp_size > 1 or par.tp_size > 1 or par.mixed_precision != "off"
    for name, on in (
        ("lora", config.lora is not None),
        ("optimizer.in_backward", config.optimizer.in_backward),
    ):
        if sharded and on:
            raise ConfigError(
                f"The field '{name}' is not supported with a sharded model (parallel: "
                f"tp_size={par.tp_size}, {dp_size} data-parallel ranks, mixed_precision="
                f"{par.mixed_precision}). Train with one process, or turn {name} off.",
                field=name,
            )
    if config.compile and par.tp_size > 1:
        raise ConfigError(
            f"The field 'compile' is true with parallel.tp_size={par.tp_size}: compiled layers "
            "over tensor-parallel weights fail in the backward pass with this torch. Set "
            "compile: false, or shard with FSDP2 alone (parallel.tp_size=1).",
            field="compile",
            value=True,
        )
