"""Training checkpoints: written atomically, pruned to the last K, found again to resume.

A checkpoint is the directory ``OUTPUT_DIR/checkpoints/step_N/`` holding

* the model: ``config.json`` (lmhub-native keys) and the weights from
  :func:`lmhub.save_checkpoint`, so ``lmhub.load_model(step_dir)`` loads it; the tokenizer's
  files beside them;
* or, for a LoRA run, only the adapters: ``trainable.safetensors`` (the
  :func:`~lmhub.peft.trainable_state_dict`, which resume copies back onto the re-loaded base
  model) and ``adapter/``, the same weights as a PEFT adapter directory (what the run's cards
  name); the tokenizer's files beside them;
* ``optimizer.pt``: the optimizer's state dict (of the trainable parameters only);
* ``trainer_state.pt``: the step, tokens seen, the schedule's step, the data position and every
  RNG state (torch CPU and CUDA, Python, NumPy).

It is built in a hidden staging directory next to it, every file flushed to disk, then renamed
into place in one step; only then is the ``latest`` file (holding ``step_N``) replaced, and old
checkpoints beyond ``keep_last`` removed. A run killed at any instant leaves every earlier
checkpoint complete, and a staging directory that resuming ignores and the next save removes.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.save_load import load_checkpoint, save_checkpoint
from lmhub.checkpoint.writers import atomic_write_text, save_safetensors_sharded
from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import ModelCheckpointError
from lmhub.hf.tokenizer_files import write_tokenizer_files
from lmhub.models.hf_dir import encode_fields, write_config_json
from lmhub.peft import load_trainable_state_dict, save_adapter, trainable_state_dict

__all__ = [
    "ADAPTER_DIR",
    "CHECKPOINTS_DIR",
    "TrainState",
    "checkpoint_step",
    "find_resume_checkpoint",
    "list_checkpoints",
    "load_train_checkpoint",
    "rng_state",
    "save_train_checkpoint",
    "set_rng_state",
]

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.pt"
TRAINABLE_FILE = "trainable.safetensors"
ADAPTER_DIR = "adapter"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass(kw_only=True)
class TrainState:
    """What besides the model and optimizer a run needs to continue exactly."""

    step: int
    """Optimiser steps done."""
    tokens_seen: int
    """Target tokens trained on so far."""
    data_position: dict[str, Any]
    """The training sampler's state (:meth:`~lmhub.data.sampler.ResumableSampler.state_dict`)."""
    rng: dict[str, Any]
    """Every RNG state, from :func:`rng_state`."""


def rng_state() -> dict[str, Any]:
    """The state of every random number generator a training step may draw from."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        # as plain lists: torch.load(weights_only=True) reads no NumPy arrays
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    version, *rest = state["python"]
    random.setstate((version, tuple(rest[0]), *rest[1:]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_dir_config(model: nn.Module, family_name: str) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint in lmhub's own layout (any family)."""
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    return {
        "lmhub_family": family_name,
        **encode_fields(model.config),
        "dtype": str(dtype).removeprefix("torch."),
    }


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_train_checkpoint(
    output_dir: Path,
    *,
    model: nn.Module,
    family_name: str,
    tokenizer: Tokenizer | None,
    optimizer: Any,
    state: TrainState,
    keep_last: int,
    adapter_base: str | None = None,
    before_publish: Callable[[Path], None] | None = None,
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``checkpoints/step_N/`` atomically, point ``latest`` at it, prune; return its path.

    ``adapter_base`` (the base model's name or path, for PEFT) marks a LoRA run: only the
    adapters are saved.

    ``write_extra(staging_dir)`` adds files of the caller's (the LM type's record);
    ``before_publish(staging_dir)`` runs once every file is staged (tests kill the process
    there).
    """
    root = output_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step_*"):  # staging left by a run killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{state.step}"
    target = root / name
    staging = root / f".{name}.tmp-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        if adapter_base is not None:
            tensors = trainable_state_dict(model)
            save_safetensors_sharded(
                tensors,
                staging,
                max_shard_size=sum(t.nbytes for t in tensors.values()) + 1,
                filename_prefix=TRAINABLE_FILE.removesuffix(".safetensors"),
            )
            save_adapter(model, staging / ADAPTER_DIR, base_model_name_or_path=adapter_base)
        else:
            save_checkpoint(staging, model)
            write_config_json(staging, model_dir_config(model, family_name))
        if tokenizer is not None:
            write_tokenizer_files(tokenizer, staging)
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
        torch.save(
            {
                "step": state.step,
                "tokens_seen": state.tokens_seen,
                "data_position": state.data_position,
                "rng": state.rng,
            },
            staging / STATE_FILE,
        )
        if write_extra is not None:
            write_extra(staging)
        _fsync_tree(staging)
        if before_publish is not None:
            before_publish(staging)
        if target.exists():  # the same step saved again (e.g. the final step): replace it
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Written (and the directory fsynced) only after the rename: the pointer never names a
    # checkpoint that is not on disk.
    atomic_write_text(root / LATEST_FILE, name + "\n")
    if keep_last > 0:
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(output_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest first (staging directories are not listed)."""
    root = output_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def checkpoint_step(directory: Path) -> int:
    """The step a training checkpoint was saved at (0 for a directory that is not one)."""
    state = directory / STATE_FILE
    if not state.is_file():
        return 0
    return int(torch.load(state, map_location="cpu", weights_only=True)["step"])


def find_resume_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint ``resume: auto`` continues from: the one ``latest`` names if it is
    complete, else the newest complete one; ``None`` when there is none."""
    pointer = output_dir / CHECKPOINTS_DIR / LATEST_FILE
    if pointer.is_file():
        named = output_dir / CHECKPOINTS_DIR / pointer.read_text().strip()
        if _STEP_DIR.match(named.name) and (named / STATE_FILE).is_file():
            return named
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def load_train_checkpoint(
    directory: Path, *, model: nn.Module, optimizer: Any, device: torch.device
) -> TrainState:
    """Load a checkpoint into ``model`` and ``optimizer`` (in place); return the rest.

    A LoRA run's checkpoint loads its adapters into ``model``, which must be the base model
    with the same LoRA applied."""
    if not (directory / STATE_FILE).is_file():
        raise ModelCheckpointError(
            f"{directory} is not a complete training checkpoint: it has no {STATE_FILE}. Pass a "
            "checkpoints/step_N directory of a run, or resume=never to start over.",
            path=directory,
        )
    if (directory / TRAINABLE_FILE).is_file():  # a LoRA run: the adapters onto the base
        with open_checkpoint(directory / TRAINABLE_FILE) as reader:
            load_trainable_state_dict(model, dict(reader.iter_tensors()))
    else:
        load_checkpoint(directory, model)
    optimizer.load_state_dict(
        torch.load(directory / OPTIMIZER_FILE, map_location=device, weights_only=True)
    )
    raw = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainState(
        step=int(raw["step"]),
        tokens_seen=int(raw["tokens_seen"]),
        data_position=dict(raw["data_position"]),
        rng=raw["rng"],
    )
