"""The training loop: AdamW, a schedule, accumulation, clipping, precision, validation, saves.

One optimiser step runs ``grad_accum_steps`` micro-batches. Each backward pass takes the loss
*sum* over its target tokens; the summed gradients are then divided by the target tokens of all
the micro-batches, so ``k`` micro-batches of ``b`` rows give the gradient of one batch of
``k * b`` rows. A NaN or infinite loss or gradient norm stops the run with
:class:`~lmhub.errors.NonFiniteLossError` before the optimiser steps, so no bad update is ever
made and the checkpoints already written stay the last good ones (with
``optimizer.in_backward`` the parameters step during the backward pass, so the check comes after
that step: resume from the last checkpoint).

Under torchrun the model is sharded over :class:`~lmhub.parallel.Gangs`: each data-parallel rank
runs its share of every micro-batch's rows, the loss sums and token counts are summed over the
data-parallel gang, and the gradients (which FSDP2 averages over the gang) are divided so that
the step equals one process's on the whole batch. Rank 0 alone writes metrics and cards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lmhub.data.token_cache import resolve_bos_eos
from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import NonFiniteLossError
from lmhub.lm.lm_type import LmComponents, LmType, special_token_ids
from lmhub.lm.metrics import LmMetric
from lmhub.lm.registry import get_lm_type
from lmhub.models.family import ModelFamily
from lmhub.parallel.fsdp import hold_gathered
from lmhub.parallel.gangs import Gangs, fake_gangs
from lmhub.parallel.shard import grad_norm_, is_sharded
from lmhub.train.cards import write_run_cards
from lmhub.train.config import TrainConfig
from lmhub.train.data import NamedLoader, TrainBatches
from lmhub.train.lm_state import load_extra, write_lm_state
from lmhub.train.progress import TrainProgress
from lmhub.train.resume import (
    TrainState,
    list_checkpoints,
    rng_state,
    save_train_checkpoint,
    set_rng_state,
)
from lmhub.train.schedules import LrSchedule
from lmhub.train.sharded import load_any_train_checkpoint, save_sharded_train_checkpoint
from lmhub.train.sinks import MetricSink

__all__ = ["StepCallback", "Trainer", "build_optimizer", "move_batch"]

StepCallback = Callable[["Trainer", dict[str, Any]], None]
"""Called after every optimiser step with the trainer and the step's metrics row."""


def build_optimizer(
    params: list[nn.Parameter], *, lr: float, weight_decay: float, betas: Any, eps: float
) -> torch.optim.Optimizer:
    """AdamW over ``params``: matrices decay, vectors (norms, biases) do not; fused where the
    device supports it, else foreach."""
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, foreach=True)


def move_batch(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor on ``device``."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Runs the loop of a :class:`~lmhub.train.config.TrainConfig` on a built model and data.

    :func:`lmhub.train.run.build_trainer` builds one from a config; :meth:`fit` trains.
    """

    def __init__(
        self,
        *,
        config: TrainConfig,
        model: nn.Module,
        family: ModelFamily[Any, Any],
        tokenizer: Tokenizer,
        components: LmComponents,
        train_batches: TrainBatches,
        eval_loaders: list[NamedLoader],
        optimizer: Any,
        sinks: list[MetricSink],
        progress: TrainProgress,
        device: torch.device,
        callbacks: list[StepCallback] | None = None,
        lora_base: Path | None = None,
        gangs: Gangs | None = None,
        lm_type: LmType | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.family = family
        self.tokenizer = tokenizer
        self.components = components
        self.train_batches = train_batches
        self.eval_loaders = eval_loaders
        self.optimizer = optimizer
        self.sinks = sinks
        self.progress = progress
        self.device = device
        self.callbacks = list(callbacks or [])
        self.lora_base = lora_base
        """A LoRA run's base weights directory (``None``: a full run); checkpoints then hold
        only the adapters."""
        self.gangs = gangs if gangs is not None else fake_gangs(device)
        """The gangs the model is sharded over (single-process ones when it is not)."""
        self.is_main = self.gangs.root.rank == 0
        """Whether this process writes the run's outputs (rank 0)."""
        self.sharded = is_sharded(model)
        """Whether the model's parameters are DTensors (checkpoints are then DCP)."""
        self.lm_type = lm_type or get_lm_type(config.lm_type)
        self.output_dir = Path(config.output_dir)
        self.run_name = config.run_name or self.output_dir.resolve().name
        self.schedule = LrSchedule(
            kind=config.lr_schedule.kind,
            peak_lr=config.optimizer.lr,
            warmup_steps=config.lr_schedule.warmup_steps,
            total_steps=config.max_steps,
            min_lr_ratio=config.lr_schedule.min_lr_ratio,
        )
        self.step = 0
        self.tokens_seen = 0
        modules = [model] if components.extra is None else [model, components.extra]
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]
        components.loss.configure(self)

    # -- state ----------------------------------------------------------------------------------

    def restore(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: model, optimizer, data position, RNG, counters."""
        state = load_any_train_checkpoint(
            checkpoint,
            model=self.model,
            optimizer=self.optimizer,
            device=self.device,
            rank=self.gangs.root.rank,
        )
        load_extra(checkpoint, self.components.extra)
        self.step, self.tokens_seen = state.step, state.tokens_seen
        self.train_batches.load_state_dict(state.data_position)
        set_rng_state(state.rng)

    def save(self) -> Path:
        """Write the checkpoint of the current step; register the run's cards."""
        state = TrainState(
            step=self.step,
            tokens_seen=self.tokens_seen,
            data_position=self.train_batches.state_dict(),
            rng=rng_state(),
        )
        if self.sharded:
            path = save_sharded_train_checkpoint(
                self.output_dir,
                model=self.model,
                family_name=self.family.name,
                tokenizer=self.tokenizer,
                optimizer=self.optimizer,
                state=state,
                keep_last=self.config.checkpoint.keep_last,
                gangs=self.gangs,
                write_extra=self.write_lm_state,
            )
        else:
            path = save_train_checkpoint(
                self.output_dir,
                model=self.model,
                family_name=self.family.name,
                tokenizer=self.tokenizer,
                optimizer=self.optimizer,
                state=state,
                keep_last=self.config.checkpoint.keep_last,
                adapter_base=str(self.lora_base) if self.lora_base is not None else None,
                write_extra=self.write_lm_state,
            )
        if self.is_main:
            self.write_cards(final=None)
        return path

    def write_lm_state(self, directory: Path) -> None:
        """Record the LM type (and save its extra modules) in a model directory."""
        data = self.config.data
        add_bos, add_eos = resolve_bos_eos(self.tokenizer, data.add_bos, data.add_eos)
        write_lm_state(
            directory,
            lm_type=self.lm_type,
            options=dict(self.config.lm_options),
            special_ids=special_token_ids(self.tokenizer, self.lm_type.special_tokens),
            extra=self.components.extra,
            step=self.step,
            add_bos=add_bos,
            add_eos=add_eos,
        )

    def write_cards(self, *, final: Path | None) -> None:
        """(Re)write the cards of the run's checkpoints (and of ``final``)."""
        write_run_cards(
            self.output_dir,
            run=self.run_name,
            family=self.family,
            config=self.model.config,
            checkpoints=list_checkpoints(self.output_dir),
            final=final,
            register=self.config.checkpoint.register_cards,
            lora_base=self.lora_base,
            final_merged=self.config.lora is not None and self.config.lora.merge_on_export,
        )

    # -- the loop -------------------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast under ``bf16-mixed``, else nothing."""
        if self.config.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _micro_batches(self) -> Iterator[Any]:
        for _ in range(self.config.grad_accum_steps):
            yield move_batch(self.train_batches.next_batch(), self.device)

    def train_step(self) -> dict[str, Any]:
        """Run one optimiser step; return its metrics row."""
        self.model.train()
        step = self.step + 1
        lr = self.schedule(step)
        self._set_lr(lr)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        aux_sum: torch.Tensor | None = None
        num_tokens = 0
        for batch in self._micro_batches():
            with self.autocast():
                out = self.components.loss.loss_fn(batch, dataloader_name="lm")
            count = int(out["num_tokens"]) if "num_tokens" in out else 1
            micro_sum = out["loss_sum"] if "loss_sum" in out else out["loss"] * count
            objective = micro_sum.float()
            if "aux_loss" in out:  # per token, so weighted like the loss by the token count
                aux = out["aux_loss"].float() * count
                objective = objective + aux
                aux_sum = aux.detach() if aux_sum is None else aux_sum + aux.detach()
            if self.config.optimizer.in_backward:  # steps inside backward: give it the mean
                (objective / max(count, 1)).backward()
            else:  # divided by all micro-batches' tokens in _finish_gradients
                objective.backward()
            loss_sum += micro_sum.detach().float()
            num_tokens += count
        if self.gangs.dp.size > 1:  # the whole batch's loss and tokens, over every dp rank
            count = torch.tensor(float(num_tokens), dtype=torch.float64, device=loss_sum.device)
            totals = torch.stack([loss_sum.double(), count])
            dist.all_reduce(totals, group=self.gangs.dp.group)  # type: ignore[arg-type]
            loss_sum, num_tokens = totals[0].float(), int(totals[1])
        loss = float(loss_sum) / max(num_tokens, 1)
        if not math.isfinite(loss):
            raise NonFiniteLossError(step, loss)
        grad_norm = self._finish_gradients(num_tokens)
        if grad_norm is not None and not math.isfinite(grad_norm):
            raise NonFiniteLossError(step, grad_norm, quantity="gradient norm")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step = step
        self.tokens_seen += num_tokens
        row = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens": num_tokens}
        if aux_sum is not None:
            row["aux_loss"] = float(aux_sum) / max(num_tokens, 1)
        return {**row, **self._router_metrics()}

    def _router_metrics(self) -> dict[str, float]:
        """``expert_load_max``: the busiest expert's share of tokens over the mean share, in the
        worst MoE layer of the last micro-batch (1 is perfectly even); nothing for dense models."""
        load_fn = getattr(self.model, "router_load", None)
        load = load_fn() if load_fn is not None else None
        if load is None:
            return {}
        per_layer = load.max(dim=1).values / load.mean(dim=1).clamp(min=1e-9)
        return {"expert_load_max": float(per_layer.max())}

    def _set_lr(self, lr: float) -> None:
        if hasattr(self.optimizer, "set_lr"):  # optimizer-in-backward
            self.optimizer.set_lr(lr)
            return
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _finish_gradients(self, num_tokens: int) -> float | None:
        """Divide the summed gradients by the target tokens (of all data-parallel ranks), clip;
        return the global norm."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:  # optimizer-in-backward already stepped and freed them
            return None
        # FSDP2 has already averaged the gradients over the dp ranks (divided by their count).
        divisor = max(num_tokens, 1) / self.gangs.dp.size
        clip = self.config.optimizer.grad_clip
        if self.sharded:
            for grad in grads:
                grad.div_(divisor)
            return grad_norm_(self.params, clip if clip is not None else math.inf)
        torch._foreach_div_(grads, float(divisor))
        norm = torch.nn.utils.clip_grad_norm_(
            self.params, clip if clip is not None else math.inf, error_if_nonfinite=False
        )
        return float(norm)

    @torch.no_grad()
    def evaluate(self, splits: tuple[str, ...] = ("valid",)) -> list[dict[str, Any]]:
        """Run the evaluation loaders of ``splits``; write and return their rows.

        Each row has ``step``, ``split``, ``loader`` and the loader's metrics as
        ``<split>/<loader>/<metric>``. Evaluation draws its random numbers (masks, noise) from
        a generator seeded with ``seed``, apart from training's, so it is the same at every
        step and training draws the same numbers with or without it.
        """
        rows = []
        extra = self.components.extra
        self.model.eval()
        if extra is not None:
            extra.eval()
        try:
            # A sharded model's root stays gathered while the loss reads its output head.
            with (
                hold_gathered(self.model),
                torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]),
            ):
                torch.manual_seed(self.config.seed)
                for loader in self.eval_loaders:
                    if loader.split in splits:
                        rows.append(self._eval_loader(loader))
        finally:
            self.model.train()
            if extra is not None:
                extra.train()
        for row in rows:
            self._emit(row)
        return rows

    def _eval_loader(self, loader: NamedLoader) -> dict[str, Any]:
        prefix = f"{loader.split}/{loader.name}/"
        row: dict[str, Any] = {"step": self.step, "split": loader.split, "loader": loader.name}
        if loader.route == "prediction":
            metrics, path = self._eval_prediction(loader)
            row["predictions"] = str(path.relative_to(self.output_dir))
        else:
            metrics = self._eval_lm(loader)
        row.update({prefix + name: metric.compute() for name, metric in metrics.items()})
        return row

    def _eval_lm(self, loader: NamedLoader) -> dict[str, LmMetric]:
        metrics = self.components.lm_metrics()
        for batch in loader:
            batch = move_batch(batch, self.device)
            with self.autocast():
                out = self.components.loss.loss_fn(batch, dataloader_name=loader.name)
            for metric in metrics.values():
                metric.update(batch, out)
        return metrics

    def _eval_prediction(self, loader: NamedLoader) -> tuple[dict[str, LmMetric], Path]:
        predictor = self.components.predictor
        assert predictor is not None  # the loader exists only for a type that predicts
        metrics = self.components.prediction_metrics()
        path = self.output_dir / "predictions" / loader.split / loader.name
        path = path / f"step_{self.step}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Every rank predicts (sharded models need all of them); rank 0 alone writes.
        with open(path if self.is_main else os.devnull, "w", encoding="utf-8") as out:
            for batch in loader:
                batch = move_batch(batch, self.device)
                with self.autocast():
                    preds = predictor.predict(batch)
                for metric in metrics.values():
                    metric.update(batch, preds)
                for record in predictor.to_dict(batch, preds):
                    out.write(json.dumps(record) + "\n")
        return metrics, path

    def _emit(self, row: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(row)
        self.progress.update(self.step, row)

    def fit(self) -> None:
        """Train from the current step to ``max_steps``, logging, validating and saving."""
        cfg = self.config
        self.progress.start(self.step)
        window_tokens, window_start = 0, time.perf_counter()
        try:
            while self.step < cfg.max_steps:
                result = self.train_step()
                window_tokens += result.pop("tokens")
                last = self.step == cfg.max_steps
                row = {**result, "tokens_seen": self.tokens_seen}
                if self.step % cfg.log.every_steps == 0 or last:
                    elapsed = time.perf_counter() - window_start
                    row["tokens_per_s"] = window_tokens / elapsed if elapsed > 0 else 0.0
                    self._emit(row)
                    window_tokens, window_start = 0, time.perf_counter()
                else:
                    self.progress.update(self.step)
                for callback in self.callbacks:
                    callback(self, row)
                every_eval = cfg.eval.every_steps
                if self.eval_loaders and (last or (every_eval and self.step % every_eval == 0)):
                    self.evaluate(("valid", "test") if last else ("valid",))
                every_save = cfg.checkpoint.every_steps
                if last or (every_save and self.step % every_save == 0):
                    self.save()
        finally:
            self.progress.stop()
