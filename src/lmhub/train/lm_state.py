"""An LM type's part of a run on disk, and loading a run back with its type's components.

Every checkpoint (and ``final/``) of a run holds ``lm_type.json``: the type's name, its options,
the ids of its special tokens and whether its data had BOS before each prompt and EOS after
each target (``data``: the predictors encode prompts the same way at generate time); and,
where the type adds modules to the backbone, ``lm_type.safetensors`` with their weights.
``lmhub eval`` and ``lmhub generate`` read them to rebuild the type's predictor around the
saved backbone. A directory without ``lm_type.json`` is an autoregressive model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmhub.checkpoint.readers import open_checkpoint
from lmhub.checkpoint.writers import atomic_write_text, write_safetensors_file
from lmhub.data.sources import DataKind
from lmhub.data.tokenizers import Tokenizer, load_tokenizer
from lmhub.errors import ConfigError, ModelCheckpointError
from lmhub.lm.arlm import pad_id_of
from lmhub.lm.lm_type import LmComponents, LmContext, LmType, special_token_ids
from lmhub.lm.registry import get_lm_type
from lmhub.models.resolve import (
    ModelSource,
    instantiate,
    load_source_tokenizer,
    resolve_model_source,
)

__all__ = [
    "LM_EXTRA_FILE",
    "LM_TYPE_FILE",
    "LmRun",
    "as_trained",
    "build_components",
    "load_extra",
    "load_lm_run",
    "read_lm_type",
    "required_vocab",
    "write_lm_state",
]

LM_TYPE_FILE = "lm_type.json"
LM_EXTRA_FILE = "lm_type.safetensors"


def required_vocab(tokenizer: Tokenizer, lm_type: LmType) -> int:
    """The embeddings a backbone needs: the tokenizer's ids plus the type's special tokens."""
    return tokenizer.vocab_size + len(lm_type.special_tokens)


def build_components(
    lm_type: LmType,
    model: nn.Module,
    tokenizer: Tokenizer,
    kind: DataKind,
    *,
    options: dict[str, Any],
    seq_len: int,
    max_new_tokens: int,
) -> LmComponents:
    """Build ``lm_type``'s components for ``model`` (whose vocabulary holds its specials).

    Raises:
        ConfigError: for options the type does not have, or a vocabulary too small.
    """
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    need = required_vocab(tokenizer, lm_type)
    if isinstance(vocab, int) and vocab < need:
        raise ConfigError(
            f"The model has {vocab} embeddings but the tokenizer's {tokenizer.vocab_size} ids "
            f"and the {lm_type.name} type's special tokens {list(lm_type.special_tokens)} need "
            f"{need}. Set model_config.vocab_size={need} (a randomly initialised model gets it "
            "automatically).",
            field="model_config.vocab_size",
            value=vocab,
        )
    try:
        opts = lm_type.make_options(options)
    except ConfigError as exc:
        raise ConfigError(
            f"In lm_options (of lm_type {lm_type.name!r}): {exc}",
            field=f"lm_options.{exc.field}" if exc.field else "lm_options",
            value=exc.value,
        ) from None
    context = LmContext(
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        seq_len=seq_len,
        max_new_tokens=max_new_tokens,
        special_ids=special_token_ids(tokenizer, lm_type.special_tokens),
        options=opts,
        pad_token_id=pad_id_of(tokenizer),
    )
    return lm_type.build(context)


def write_lm_state(
    directory: Path,
    *,
    lm_type: LmType,
    options: dict[str, Any],
    special_ids: dict[str, int],
    extra: nn.Module | None,
    step: int,
    add_bos: bool | None = None,
    add_eos: bool | None = None,
) -> None:
    """Write ``lm_type.json`` (and the extra modules' weights) into ``directory``; ``step`` is
    the training step the weights are from, ``add_bos`` / ``add_eos`` the run's resolved
    ``data.add_bos`` / ``data.add_eos`` (``None``: not recorded)."""
    record: dict[str, Any] = {
        "lm_type": lm_type.name,
        "lm_options": options,
        "special_ids": special_ids,
        "step": step,
    }
    data = {k: v for k, v in (("add_bos", add_bos), ("add_eos", add_eos)) if v is not None}
    if data:
        record["data"] = data
    atomic_write_text(directory / LM_TYPE_FILE, json.dumps(record, indent=2) + "\n")
    if extra is not None:
        path = directory / LM_EXTRA_FILE
        path.unlink(missing_ok=True)
        write_safetensors_file(path, {k: v for k, v in extra.state_dict().items()})


def read_lm_type(directory: Path) -> dict[str, Any] | None:
    """The ``lm_type.json`` record of ``directory``, or ``None`` (an autoregressive model)."""
    path = directory / LM_TYPE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelCheckpointError(
            f"The file {path} is not readable JSON ({exc}). Restore it from the run's other "
            "checkpoints, or delete it to load the model as autoregressive.",
            path=path,
        ) from None
    return record


def load_extra(directory: Path, extra: nn.Module | None) -> None:
    """Load ``lm_type.safetensors`` of ``directory`` into ``extra`` (when both exist)."""
    path = directory / LM_EXTRA_FILE
    if extra is None or not path.is_file():
        return
    with open_checkpoint(path) as reader:
        state = dict(reader.iter_tensors())
    extra.load_state_dict(state)


def as_trained(tokenizer: Tokenizer, record: dict[str, Any] | None) -> Tokenizer:
    """``tokenizer`` with ``add_bos_token`` / ``add_eos_token`` set to the run's recorded
    ``data.add_bos`` / ``data.add_eos`` (a copy; the predictors encode prompts by them), so a
    run trained with ``data.add_bos: true`` gets BOS before its prompts whatever the tokenizer
    says. Records without ``data`` (older runs) leave ``tokenizer`` as it is."""
    data = (record or {}).get("data") or {}
    if not data:
        return tokenizer
    tokenizer = copy.copy(tokenizer)
    if "add_bos" in data:
        tokenizer.add_bos_token = bool(data["add_bos"])
    if "add_eos" in data:
        tokenizer.add_eos_token = bool(data["add_eos"])
    return tokenizer


@dataclass(kw_only=True)
class LmRun:
    """A saved model loaded back with its LM type's components."""

    model: nn.Module
    """The backbone, in eval mode."""
    tokenizer: Tokenizer
    """Its tokenizer."""
    lm_type: LmType
    """Its LM type (``arlm`` where the directory records none)."""
    components: LmComponents
    """The type's components, for seq2seq data."""
    source: ModelSource
    """What the name resolved to."""


def load_lm_run(
    name: str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    tokenizer: Tokenizer | None = None,
    max_new_tokens: int = 64,
    options: dict[str, Any] | None = None,
) -> LmRun:
    """Load a run's checkpoint (a directory or a card such as ``RUN@last``) with its type.

    ``options`` override the saved ``lm_options`` (e.g. ``{"predict_steps": 4}``).
    """
    source = resolve_model_source(name)
    record = read_lm_type(source.checkpoint) if source.checkpoint is not None else None
    lm_type = get_lm_type(record["lm_type"] if record else "arlm")
    model = instantiate(source, device=device, dtype=dtype).eval()
    if tokenizer is None:
        tokenizer = load_source_tokenizer(source) or load_tokenizer("byte")
    tokenizer = as_trained(tokenizer, record)
    saved = dict(record.get("lm_options", {})) if record else {}
    components = build_components(
        lm_type,
        model,
        tokenizer,
        "seq2seq",
        options={**saved, **(options or {})},
        seq_len=getattr(model.config, "max_seq_len", 1 << 20),
        max_new_tokens=max_new_tokens,
    )
    if source.checkpoint is not None:
        load_extra(source.checkpoint, components.extra)
    if components.extra is not None:
        components.extra.to(device).eval()
    return LmRun(
        model=model, tokenizer=tokenizer, lm_type=lm_type, components=components, source=source
    )
