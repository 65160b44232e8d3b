"""Training checkpoints of sharded runs (FSDP2 / tensor parallel), and loading any checkpoint
into a sharded or plain model.

A sharded checkpoint is ``OUTPUT_DIR/checkpoints/step_N/`` holding

* ``dcp/``: the model and optimizer state as a ``torch.distributed.checkpoint`` directory, each
  rank writing its own shards (:func:`lmhub.parallel.dcp.save_sharded`);
* ``trainer_state.rank{R}.pt``: each rank's step, data position and RNG states, and
  ``trainer_state.pt``: rank 0's (what marks the checkpoint complete);
* ``config.json`` (lmhub-native keys) and the tokenizer's files, from rank 0.

Every rank writes into one staging directory; after a barrier rank 0 flushes it to disk and
renames it into place, and only then moves ``latest``. A run killed at any instant leaves the
previous checkpoint whole. DCP reshards on load, so a checkpoint of 2 ranks resumes on 1 (or 4);
a plain checkpoint of one process resumes on several ranks (each rank keeps its pieces).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from lmhub.assets.store import default_asset_store
from lmhub.checkpoint.assign import finish_model
from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.writers import atomic_write_text
from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import ModelCheckpointError
from lmhub.hf.export import ExportResult, export
from lmhub.hf.tokenizer_files import write_tokenizer_files
from lmhub.models.family import ModelFamily
from lmhub.models.hf_dir import read_hf_dir, write_config_json
from lmhub.models.hub import card_checkpoint
from lmhub.models.materialize import build_on_meta
from lmhub.models.resolve import TOKENIZER_FILES
from lmhub.parallel.dcp import load_sharded, save_sharded
from lmhub.parallel.gangs import Gangs
from lmhub.parallel.setup import barrier
from lmhub.parallel.shard import full_state_dict, is_sharded
from lmhub.train.resume import (
    CHECKPOINTS_DIR,
    LATEST_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    TrainState,
    fsync_tree,
    list_checkpoints,
    load_train_checkpoint,
    model_dir_config,
    read_train_state,
    train_state_dict,
)

__all__ = [
    "DCP_DIR",
    "consolidate_checkpoint",
    "consolidated_model",
    "is_sharded_checkpoint",
    "load_any_train_checkpoint",
    "rank_state_file",
    "save_sharded_train_checkpoint",
]

DCP_DIR = "dcp"


def rank_state_file(rank: int) -> str:
    """The file of one rank's trainer state in a sharded checkpoint."""
    return f"trainer_state.rank{rank}.pt"


def is_sharded_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` is a checkpoint written by :func:`save_sharded_train_checkpoint`."""
    return (directory / DCP_DIR / ".metadata").is_file()


def save_sharded_train_checkpoint(
    output_dir: Path,
    *,
    model: nn.Module,
    family_name: str,
    tokenizer: Tokenizer | None,
    optimizer: Any,
    state: TrainState,
    keep_last: int,
    gangs: Gangs,
    write_extra: Callable[[Path], None] | None = None,
    before_publish: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``checkpoints/step_N/`` of a sharded run; call it on every rank, in step.

    ``write_extra(staging_dir)`` runs on rank 0 (the LM type's record and its unsharded extra
    modules); ``before_publish(staging_dir)`` runs on rank 0 once every rank's files are staged
    (tests kill the process there).
    """
    root = output_dir / CHECKPOINTS_DIR
    name = f"step_{state.step}"
    target = root / name
    # One name all ranks agree on without talking; a killed save's leftovers are removed first.
    staging = root / f".{name}.tmp-sharded"
    main = gangs.root.rank == 0
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".step_*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging.mkdir()
    barrier()
    save_sharded(staging / DCP_DIR, model, optimizer)
    torch.save(train_state_dict(state), staging / rank_state_file(gangs.root.rank))
    if main:
        write_config_json(staging, model_dir_config(model, family_name))
        if tokenizer is not None:
            write_tokenizer_files(tokenizer, staging)
        torch.save(train_state_dict(state), staging / STATE_FILE)
        if write_extra is not None:
            write_extra(staging)
    barrier()
    if main:
        fsync_tree(staging)
        if before_publish is not None:
            before_publish(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        atomic_write_text(root / LATEST_FILE, name + "\n")
        if keep_last > 0:
            for old in list_checkpoints(output_dir)[:-keep_last]:
                shutil.rmtree(old, ignore_errors=True)
    barrier()
    return target


def _load_plain_into_sharded(directory: Path, model: nn.Module, optimizer: Any) -> None:
    """Load a one-process checkpoint (safetensors + ``optimizer.pt``) into a sharded model:
    every rank reads the whole tensors and keeps its pieces."""
    with open_checkpoint(directory) as reader:
        full = dict(reader.iter_tensors())
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, full, options=options)
    saved = torch.load(directory / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    # optimizer.pt numbers the parameters in param-group order; the sharded model has the same
    # parameters under the same names in the same order, so the numbers map to names.
    names = {id(p): n for n, p in model.named_parameters()}
    ordered = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    state = {ordered[i]: value for i, value in saved["state"].items()}
    groups = []
    start = 0
    for group, saved_group in zip(optimizer.param_groups, saved["param_groups"], strict=True):
        count = len(group["params"])
        groups.append({**saved_group, "params": ordered[start : start + count]})
        start += count
    set_optimizer_state_dict(
        model, optimizer, {"state": state, "param_groups": groups}, options=options
    )


def load_any_train_checkpoint(
    directory: Path, *, model: nn.Module, optimizer: Any, device: torch.device, rank: int = 0
) -> TrainState:
    """Load a sharded or a plain checkpoint into a sharded or a plain ``model`` and
    ``optimizer``; return rank ``rank``'s state (rank 0's when the checkpoint had fewer
    ranks: the data position is the same on every rank)."""
    if is_sharded_checkpoint(directory):
        load_sharded(directory / DCP_DIR, model, optimizer)
        own = directory / rank_state_file(rank)
        return read_train_state(own if own.is_file() else directory / STATE_FILE)
    if is_sharded(model):
        _load_plain_into_sharded(directory, model, optimizer)
        return read_train_state(directory / STATE_FILE)
    return load_train_checkpoint(directory, model=model, optimizer=optimizer, device=device)


def consolidated_model(model: nn.Module, family: ModelFamily[Any, Any]) -> nn.Module | None:
    """A plain, whole copy of a sharded ``model`` on rank 0's CPU (``None`` on the other ranks,
    which must call this too: the shards are gathered)."""
    state = full_state_dict(model)
    if dist.is_initialized() and dist.get_rank() != 0:
        return None
    dtype = next(iter(state.values())).dtype
    whole = build_on_meta(family.builder, model.config, dtype)  # type: ignore[attr-defined]
    whole.load_state_dict(state, assign=True)
    finish_model(whole, torch.device("cpu"))
    return whole


def resolve_checkpoint_dir(name: str) -> Path:
    """The directory of a checkpoint given by path or by card name (``RUN@step_N``)."""
    path = Path(name)
    if path.is_dir():
        return path
    return card_checkpoint(default_asset_store().get_card(name))


def consolidate_checkpoint(
    checkpoint: str | Path, out: str | Path, *, overwrite: bool = False
) -> ExportResult:
    """Write the sharded training checkpoint ``checkpoint`` (a ``step_N`` directory or its card
    name) as one Hugging Face directory at ``out``, tokenizer included; run in one process.

    Raises:
        ModelCheckpointError: ``checkpoint`` is not a sharded training checkpoint.
    """
    directory = resolve_checkpoint_dir(str(checkpoint))
    if not is_sharded_checkpoint(directory):
        raise ModelCheckpointError(
            f"{directory} is not a sharded training checkpoint (it has no {DCP_DIR}/.metadata). "
            "Pass a checkpoints/step_N directory of a run trained under torchrun; a one-process "
            "checkpoint already loads with lmhub.load_model.",
            path=directory,
        )
    family, config, dtype = read_hf_dir(directory)
    model = build_on_meta(family.builder, config, dtype or torch.float32)
    model.to_empty(device="cpu")
    finish_model(model, torch.device("cpu"))
    load_sharded(directory / DCP_DIR, model)
    has_tokenizer = any((directory / f).is_file() for f in TOKENIZER_FILES)
    return export(
        model,
        out,
        tokenizer=directory if has_tokenizer else None,
        family=family,
        overwrite=overwrite,
    )
