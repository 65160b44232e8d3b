"""Build a :class:`~lmhub.train.trainer.Trainer` from a :class:`~lmhub.train.config.TrainConfig`
and run it: what ``lmhub train`` does.

Models resolve through :func:`lmhub.models.resolve.resolve_model_source` (preset, card or
checkpoint directory); the tokenizer is ``config.tokenizer``, else the model's own (a checkpoint
directory's files, a card's ``tokenizer``), else the byte tokenizer. At the end the model is
exported to ``OUTPUT_DIR/final/`` with :func:`lmhub.hf.export.export` (tokenizer and generation
config included), which ``lmhub.load_model`` loads and, for families transformers implements,
``AutoModelForCausalLM.from_pretrained`` too.

With a ``lora:`` section, LoRA is applied once the model is loaded (before the optimizer is
built), so only the adapters train. Their base must be loadable again (by resume, the run's
cards and PEFT): a checkpoint directory or a card's local checkpoint is used where it is; a
preset's random weights are exported once to ``OUTPUT_DIR/base/``. At the end
``OUTPUT_DIR/final/adapter/`` is a PEFT adapter directory whose ``base_model_name_or_path`` is
the absolute path of that base directory; ``final/`` itself holds the tokenizer files, and with
``lora.merge_on_export`` the merged model as an ordinary HF directory (what ``RUN@last`` then
names; otherwise ``RUN@last`` loads the base and applies ``final/adapter/``).

Under torchrun (``WORLD_SIZE`` set) the processes set up :class:`~lmhub.parallel.Gangs` from the
config's ``parallel:`` section; each builds the same model (same seed or checkpoint) and keeps
its shards (:func:`lmhub.parallel.shard.shard_model`), so the run takes the same steps as one
process on the whole batch. Rank 0 writes the config, metrics, cards and ``final/``.

Example:
    >>> config = apply_overrides(TrainConfig(), ["data.train=corpus.txt", "max_steps=100"])
    >>> final = train(config)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmhub.checkpoint.writers import atomic_write_text
from lmhub.config import to_yaml
from lmhub.data.sources import DataKind
from lmhub.data.tokenizers import Tokenizer, load_tokenizer
from lmhub.errors import ConfigError, ModelCheckpointError
from lmhub.hf.export import export
from lmhub.hf.tokenizer_files import write_tokenizer_files
from lmhub.lm.arlm import pad_id_of
from lmhub.lm.lm_type import LmComponents, LmType
from lmhub.lm.registry import get_lm_type
from lmhub.models.hub import tp_plan_of
from lmhub.models.resolve import (
    ModelSource,
    instantiate,
    load_source_tokenizer,
    resolve_model_source,
)
from lmhub.parallel.gangs import Gangs
from lmhub.parallel.setup import barrier, setup_gangs
from lmhub.parallel.shard import shard_model
from lmhub.peft import apply_lora, merge_lora, save_adapter
from lmhub.train.checkpointing import enable_gradient_checkpointing
from lmhub.train.compile import compile_layers
from lmhub.train.config import (
    EvalLoaderConfig,
    TrainConfig,
    check_parallel_train_config,
    check_train_config,
)
from lmhub.train.data import Examples, NamedLoader, TrainBatches, load_data_file, load_examples
from lmhub.train.lm_state import (
    build_components,
    load_extra,
    read_lm_type,
    required_vocab,
)
from lmhub.train.memory import set_malloc_mmap_threshold
from lmhub.train.optim_in_backward import fuse_optimizer_with_backward
from lmhub.train.progress import TrainProgress
from lmhub.train.resume import (
    ADAPTER_DIR,
    checkpoint_step,
    find_resume_checkpoint,
    list_checkpoints,
)
from lmhub.train.sharded import consolidated_model
from lmhub.train.sinks import METRICS_FILE, JsonlSink, MetricSink, TensorBoardSink, truncate_metrics
from lmhub.train.trainer import StepCallback, Trainer, build_optimizer
from lmhub.utils import as_device

__all__ = [
    "BASE_DIR",
    "CONFIG_FILE",
    "FINAL_DIR",
    "build_trainer",
    "evaluate_checkpoint",
    "fit_and_export",
    "resume_checkpoint",
    "train",
]

CONFIG_FILE = "config.yaml"
FINAL_DIR = "final"
BASE_DIR = "base"
SMOKE_STEPS = 3
"""Optimiser steps of ``debug: smoke``."""


def _tokenizer(config: TrainConfig, source: Any) -> Tokenizer:
    if config.tokenizer is not None:
        return load_tokenizer(config.tokenizer)
    found = load_source_tokenizer(source)
    return found if found is not None else load_tokenizer("byte")


def parallel_gangs(config: TrainConfig) -> Gangs | None:
    """The gangs of a torchrun launch (or of one process that asks for tensor parallelism or
    FSDP2 mixed precision), per ``config.parallel``; ``None`` for a plain single process."""
    par = config.parallel
    if "WORLD_SIZE" not in os.environ and par.tp_size == 1 and par.mixed_precision == "off":
        return None
    # "cuda" or "cuda:N": each rank takes its LOCAL_RANK's GPU.
    device = None if config.device.startswith("cuda") else config.device
    return setup_gangs(
        tp_size=par.tp_size, dp_shard=par.dp_shard, dp_replicate=par.dp_replicate, device=device
    )


def resume_checkpoint(config: TrainConfig) -> Path | None:
    """The checkpoint the run continues from, per ``config.resume`` (``None``: start afresh).

    Raises:
        ConfigError: for ``resume: never`` on an output directory that has checkpoints.
        ModelCheckpointError: for a ``resume`` path that is not a checkpoint.
    """
    output = Path(config.output_dir)
    if config.resume == "auto":
        return find_resume_checkpoint(output)
    if config.resume == "never":
        if list_checkpoints(output):
            raise ConfigError(
                f"The output directory {output} already holds checkpoints and resume is 'never'. "
                "Pick another output_dir, remove the old run, or set resume=auto to continue it.",
                field="resume",
                value=config.resume,
            )
        return None
    path = Path(config.resume)
    if not path.is_dir():
        raise ModelCheckpointError(
            f"The resume checkpoint {path} does not exist. Pass auto, never, or the path of a "
            "checkpoints/step_N directory.",
            path=path,
        )
    return path


def _lora_base(
    source: ModelSource, model: nn.Module, tokenizer: Tokenizer, output: Path, *, fresh: bool
) -> Path:
    """The directory a LoRA run's base weights load from (exported there for a preset)."""
    if source.checkpoint is not None:
        return source.checkpoint.resolve()
    base = output / BASE_DIR
    if fresh or not base.is_dir():  # a resumed run re-creates the same weights from the seed
        export(model, base, tokenizer=tokenizer, overwrite=True)
    return base.resolve()


def _debug_config(config: TrainConfig) -> TrainConfig:
    """``config`` as its ``debug`` mode runs it (the saved config shows these values)."""
    if config.debug == "smoke":
        return dataclasses.replace(
            config,
            max_steps=min(config.max_steps, SMOKE_STEPS),
            device="cpu",
            log=dataclasses.replace(config.log, every_steps=1),
            eval=dataclasses.replace(config.eval, every_steps=0, max_batches=1),
        )
    if config.debug == "overfit":
        return dataclasses.replace(config, batch_size=config.overfit_batch_size)
    return config


def _model_config(config: TrainConfig, source: ModelSource, need: int) -> dict[str, Any] | None:
    """The model overrides, with a vocabulary grown to ``need`` for a random model that lacks
    room for the LM type's special tokens."""
    overrides = dict(config.model_config)
    vocab = overrides.get("vocab_size", getattr(source.config, "vocab_size", None))
    if source.checkpoint is None and isinstance(vocab, int) and vocab < need:
        overrides["vocab_size"] = need
    return overrides or None


def _eval_loaders(
    config: TrainConfig,
    *,
    kind: DataKind,
    components: LmComponents,
    tokenizer: Tokenizer,
    split_examples: dict[str, Examples],
    progress: bool,
) -> list[NamedLoader]:
    """The named evaluation loaders ``eval.loaders`` asks for (by default ``lm`` and, for
    seq2seq data, ``prediction`` on each split that has data)."""
    specs = list(config.eval.loaders)
    if not specs:
        for split in split_examples:
            specs.append(EvalLoaderConfig(name="lm", kind="lm", split=split))  # type: ignore[arg-type]
            if kind == "seq2seq" and components.prediction_collator is not None:
                specs.append(
                    EvalLoaderConfig(name="prediction", kind="prediction", split=split)  # type: ignore[arg-type]
                )
    data = config.data
    loaders = []
    for spec in specs:
        if spec.data is not None:
            spec_kind, examples = load_data_file(
                spec.data,
                tokenizer,
                seq_len=config.seq_len,
                pad_token_id=components.pad_token_id,
                doc_separator=data.doc_separator,
                add_bos=data.add_bos,
                add_eos=data.add_eos,
                cache_dir=data.cache_dir,
                progress=progress,
            )
            if spec_kind != kind:
                raise ConfigError(
                    f"The evaluation loader {spec.name!r} reads {spec.data}, which is {spec_kind} "
                    f"data, but the run trains on {kind} data. Give it {kind} data.",
                    field="eval.loaders",
                    value=spec.data,
                )
        elif spec.split in split_examples:
            examples = split_examples[spec.split]
        else:
            what = "data.test" if spec.split == "test" else "data.valid or data.valid_fraction"
            raise ConfigError(
                f"The evaluation loader {spec.name!r} reads the {spec.split} split, which has no "
                f"data. Set {what}, or give the loader its own data.",
                field="eval.loaders",
                value=spec.name,
            )
        if spec.kind == "lm":
            collate = components.train_collator
        elif components.prediction_collator is not None:
            collate = components.prediction_collator
        else:
            raise ConfigError(
                f"The evaluation loader {spec.name!r} is a prediction loader, but the "
                f"{config.lm_type} type predicts from seq2seq data only and the run's data is "
                f"{kind}. Make it an lm loader.",
                field="eval.loaders",
                value=spec.name,
            )
        loaders.append(
            NamedLoader(
                name=spec.name,
                kind=spec.kind,
                split=spec.split,
                examples=examples,
                collate=collate,
                batch_size=config.eval.batch_size or config.batch_size,
                max_batches=config.eval.max_batches,
            )
        )
    return loaders


@dataclass(kw_only=True)
class _Built:
    """A run's model, tokenizer, LM type and data, before any training state."""

    source: ModelSource
    model: nn.Module
    tokenizer: Tokenizer
    lm_type: LmType
    components: LmComponents
    train_batches: TrainBatches
    eval_loaders: list[NamedLoader]
    progress: TrainProgress


def _build(
    config: TrainConfig, *, model_name: str | None = None, gangs: Gangs | None = None
) -> _Built:
    """Build the model (from ``model_name`` instead of ``config.model`` when given), the LM
    type's components and the data of ``config`` (this rank's share of it under ``gangs``;
    the model is sharded later, after LoRA and checkpointing wrap it)."""
    lm_type = get_lm_type(config.lm_type)
    main = gangs is None or gangs.root.rank == 0
    device = gangs.device if gangs is not None else as_device(config.device)
    if config.malloc_mmap_threshold_mib is not None:
        set_malloc_mmap_threshold(config.malloc_mmap_threshold_mib)
    torch.manual_seed(config.seed)  # the same on every rank: the same initial weights
    source = resolve_model_source(model_name or config.model)
    tokenizer = _tokenizer(config, source)
    need = required_vocab(tokenizer, lm_type)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float32
    model_config = _model_config(config, source, need)
    model = instantiate(source, config=model_config, device=device, dtype=dtype)
    vocab = getattr(model.config, "vocab_size", None)
    if isinstance(vocab, int) and tokenizer.vocab_size > vocab:
        raise ConfigError(
            f"The tokenizer has {tokenizer.vocab_size} tokens but the model only {vocab} "
            f"embeddings. Set model_config.vocab_size={tokenizer.vocab_size} or pick another "
            "tokenizer.",
            field="model_config.vocab_size",
            value=vocab,
        )

    progress = TrainProgress(config.max_steps, mode=config.log.progress if main else "none")
    data = config.data
    overfit = config.debug == "overfit"
    kind, train_examples, valid_examples = load_examples(
        data.train,
        None if overfit else data.valid,
        tokenizer,
        seq_len=config.seq_len,
        pad_token_id=pad_id_of(tokenizer),
        valid_fraction=0.0 if overfit else data.valid_fraction,
        seed=config.seed,
        doc_separator=data.doc_separator,
        add_bos=data.add_bos,
        add_eos=data.add_eos,
        cache_dir=data.cache_dir,
        progress=progress.mode == "bar",
    )
    components = build_components(
        lm_type,
        model,
        tokenizer,
        kind,
        options=config.lm_options,
        seq_len=config.seq_len,
        max_new_tokens=config.eval.max_new_tokens,
    )
    if components.extra is not None:
        components.extra.to(device=device, dtype=dtype)
    split_examples: dict[str, Examples] = {}
    if overfit:  # one batch, validated on itself
        train_examples = [
            train_examples[i] for i in range(min(config.batch_size, len(train_examples)))
        ]
        split_examples["valid"] = train_examples
    else:
        if valid_examples is not None:
            split_examples["valid"] = valid_examples
        if data.test is not None:
            split_examples["test"] = load_data_file(
                data.test,
                tokenizer,
                seq_len=config.seq_len,
                pad_token_id=components.pad_token_id,
                doc_separator=data.doc_separator,
                add_bos=data.add_bos,
                add_eos=data.add_eos,
                cache_dir=data.cache_dir,
                progress=progress.mode == "bar",
            )[1]
    train_batches = TrainBatches(
        train_examples,
        components.train_collator,
        batch_size=config.batch_size,
        seed=config.seed,
        shard=(gangs.dp.rank, gangs.dp.size) if gangs is not None else (0, 1),
    )
    eval_loaders = _eval_loaders(
        config,
        kind=kind,
        components=components,
        tokenizer=tokenizer,
        split_examples=split_examples,
        progress=progress.mode == "bar",
    )
    return _Built(
        source=source,
        model=model,
        tokenizer=tokenizer,
        lm_type=lm_type,
        components=components,
        train_batches=train_batches,
        eval_loaders=eval_loaders,
        progress=progress,
    )


def build_trainer(
    config: TrainConfig, *, callbacks: list[StepCallback] | None = None
) -> tuple[Trainer, Path | None]:
    """Build the trainer of ``config``; return it with the checkpoint it resumes from (which
    :meth:`Trainer.restore` has already loaded), or ``None``."""
    check_train_config(config)
    config = _debug_config(config)
    output = Path(config.output_dir)
    gangs = parallel_gangs(config)
    check_parallel_train_config(config, gangs.dp.size if gangs is not None else 1)
    main = gangs is None or gangs.root.rank == 0
    checkpoint = resume_checkpoint(config)
    built = _build(config, gangs=gangs)
    model, tokenizer, source = built.model, built.tokenizer, built.source
    device = gangs.device if gangs is not None else as_device(config.device)
    lora_base = None
    if config.lora is not None:
        lora_base = _lora_base(source, model, tokenizer, output, fresh=checkpoint is None)
        apply_lora(model, config.lora)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.compile:
        compile_layers(model)
    if gangs is not None:
        plan = tp_plan_of(source.family, model.config, gangs)
        shard_model(model, plan, gangs, mixed_precision=config.parallel.mixed_precision)

    opt = config.optimizer
    extra = built.components.extra
    modules = [model] if extra is None else [model, extra]
    if opt.in_backward:
        optimizer: Any = fuse_optimizer_with_backward(
            model if extra is None else nn.ModuleList(modules),
            lambda ps: build_optimizer(
                ps, lr=opt.lr, weight_decay=opt.weight_decay, betas=opt.betas, eps=opt.eps
            ),
        )
    else:
        optimizer = build_optimizer(
            [p for m in modules for p in m.parameters() if p.requires_grad],
            lr=opt.lr,
            weight_decay=opt.weight_decay,
            betas=opt.betas,
            eps=opt.eps,
        )

    output.mkdir(parents=True, exist_ok=True)
    metrics = output / METRICS_FILE
    if main:
        atomic_write_text(output / CONFIG_FILE, to_yaml(config))
        if checkpoint is None:
            metrics.unlink(missing_ok=True)
    sinks: list[MetricSink] = []
    trainer = Trainer(
        config=config,
        model=model,
        family=source.family,
        tokenizer=tokenizer,
        components=built.components,
        train_batches=built.train_batches,
        eval_loaders=built.eval_loaders,
        optimizer=optimizer,
        sinks=sinks,
        progress=built.progress,
        device=device,
        callbacks=callbacks,
        lora_base=lora_base,
        gangs=gangs,
        lm_type=built.lm_type,
    )
    if checkpoint is not None:
        trainer.restore(checkpoint)
        if main:
            truncate_metrics(metrics, trainer.step)
    if main:
        sinks.append(JsonlSink(metrics))
        if config.log.tensorboard:
            sinks.append(TensorBoardSink(output / "tensorboard"))
    return trainer, checkpoint


def evaluate_checkpoint(config: TrainConfig, checkpoint: str) -> list[dict[str, Any]]:
    """Run every evaluation loader of ``config`` (valid and test) on ``checkpoint`` (a
    checkpoint directory or a card such as ``RUN@last``); return the metric rows.

    Predictions go to ``OUTPUT_DIR/predictions/<split>/<loader>/step_N.jsonl`` (N: the
    checkpoint's step, 0 where it records none). Evaluating the run's own last checkpoint
    writes the same rows (and files) its last evaluation wrote.
    """
    check_train_config(config)
    config = _debug_config(config)
    source = resolve_model_source(checkpoint)
    if source.checkpoint is None:
        raise ModelCheckpointError(
            f"{checkpoint!r} has no saved weights to evaluate. Pass a checkpoint directory or a "
            "run's card (RUN@last, RUN@step_N).",
            path=Path(checkpoint),
        )
    record = read_lm_type(source.checkpoint)
    if record is not None and record["lm_type"] != config.lm_type:
        config = dataclasses.replace(config, lm_type=record["lm_type"])
    if record is not None and not config.lm_options:
        config = dataclasses.replace(config, lm_options=dict(record.get("lm_options", {})))
    built = _build(config, model_name=str(source.checkpoint))
    load_extra(source.checkpoint, built.components.extra)
    trainer = Trainer(
        config=config,
        model=built.model,
        family=built.source.family,
        tokenizer=built.tokenizer,
        components=built.components,
        train_batches=built.train_batches,
        eval_loaders=built.eval_loaders,
        optimizer=None,
        sinks=[],
        progress=built.progress,
        device=as_device(config.device),
        lm_type=built.lm_type,
    )
    trainer.step = checkpoint_step(source.checkpoint) or (record or {}).get("step", 0)
    return trainer.evaluate(splits=("valid", "test"))


def fit_and_export(trainer: Trainer) -> Path:
    """Train ``trainer`` to the end, then export ``OUTPUT_DIR/final``; return its path."""
    try:
        trainer.fit()
    finally:
        for sink in trainer.sinks:
            sink.close()
    final = trainer.output_dir / FINAL_DIR
    lora = trainer.config.lora
    if trainer.sharded:  # gathered on rank 0, which exports it
        whole = consolidated_model(trainer.model, trainer.family)
        if whole is not None:
            export(whole, final, tokenizer=trainer.tokenizer, overwrite=True)
            trainer.write_lm_state(final)
            trainer.write_cards(final=final)
        barrier()  # the other ranks return once final/ is written
        return final
    if lora is None or trainer.lora_base is None:
        export(trainer.model, final, tokenizer=trainer.tokenizer, overwrite=True)
    else:
        # Staged beside final/: the export below replaces the whole directory.
        staged = trainer.output_dir / f".{FINAL_DIR}-{ADAPTER_DIR}"
        shutil.rmtree(staged, ignore_errors=True)
        save_adapter(trainer.model, staged, base_model_name_or_path=str(trainer.lora_base))
        if lora.merge_on_export:
            export(merge_lora(trainer.model), final, tokenizer=trainer.tokenizer, overwrite=True)
        else:
            shutil.rmtree(final, ignore_errors=True)
            final.mkdir(parents=True)
            write_tokenizer_files(trainer.tokenizer, final)
        shutil.rmtree(final / ADAPTER_DIR, ignore_errors=True)
        staged.rename(final / ADAPTER_DIR)
    trainer.write_lm_state(final)
    trainer.write_cards(final=final)
    return final


def train(config: TrainConfig, *, callbacks: list[StepCallback] | None = None) -> Path:
    """Train as ``config`` says (resuming per ``config.resume``); return ``OUTPUT_DIR/final``."""
    trainer, checkpoint = build_trainer(config, callbacks=callbacks)
    if checkpoint is not None:
        trainer.progress.print(f"Resuming from {checkpoint} (step {trainer.step}).")
    return fit_and_export(trainer)
