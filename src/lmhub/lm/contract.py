"""The checks every LM type must pass, whatever its batches look like (the shared base tests).

``tests/lm/test_lm_type_contract.py`` runs :func:`check_lm_type` on every registered type and on
two families; a package written by ``lmhub scaffold lm-type`` runs it in its own tests. Each
check raises :class:`AssertionError` saying what broke:

* output shape: the loss is a finite scalar (``loss_sum``/``num_tokens`` agree with it), and the
  predictor returns one prediction (ids and text) per row and one JSON record per row;
* partial masks: what sits under padding (``attention_mask == 0``) changes neither the loss nor
  the predictions;
* gradients reach every trainable parameter of the backbone and of the type's extra modules;
* collator, loss and predictor agree on the batch fields: each collator's batch is accepted by
  its consumer, no collator changes its examples, and ``generate`` answers every prompt.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import torch
from torch import nn

from lmhub.data.tokenizers import ByteTokenizer, Tokenizer
from lmhub.lm.arlm import pad_id_of
from lmhub.lm.lm_type import LmComponents, LmContext, LmType, special_token_ids
from lmhub.models.hub import get_model_hub

__all__ = ["check_lm_type", "contract_examples", "contract_model"]

CONTRACT_SHRINK: dict[str, Any] = {
    "model_dim": 32,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "ffn_inner_dim": 64,
}
"""A backbone small enough that every check takes milliseconds."""


def contract_model(
    family: str, lm_type: LmType, tokenizer: Tokenizer, *, seed: int = 0
) -> nn.Module:
    """A tiny random ``family`` backbone whose vocabulary holds ``lm_type``'s special tokens."""
    hub = get_model_hub(family)
    config = hub.get_arch_config(f"{family}_tiny")
    fields = {f.name for f in dataclasses.fields(config)}
    overrides = {k: v for k, v in CONTRACT_SHRINK.items() if k in fields}
    overrides["vocab_size"] = tokenizer.vocab_size + len(lm_type.special_tokens)
    torch.manual_seed(seed)
    return hub.create_new_model(dataclasses.replace(config, **overrides))


def contract_examples(tokenizer: Tokenizer) -> dict[str, list[dict[str, Any]]]:
    """Examples of each data kind, of unequal lengths (so batches are padded)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    pairs = [("12345=", "54321"), ("ab=", "ba"), ("xyz=", "zyx")]
    texts = ["the quick brown fox", "jumps", "over the lazy dog!"]
    return {
        "seq2seq": [
            {"prompt_ids": tokenizer.encode(p), "target_ids": tokenizer.encode(t) + eos}
            for p, t in pairs
        ],
        "text": [{"input_ids": tokenizer.encode(t) + eos} for t in texts],
    }


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _build(lm_type: LmType, model: nn.Module, tokenizer: Tokenizer, kind: Any) -> LmComponents:
    pad = pad_id_of(tokenizer)
    context = LmContext(
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        seq_len=64,
        max_new_tokens=6,
        special_ids=special_token_ids(tokenizer, lm_type.special_tokens),
        options=lm_type.options(),
        pad_token_id=pad,
    )
    return lm_type.build(context)


def _collate(collate: Any, examples: list[dict[str, Any]], seed: int) -> Any:
    before = copy.deepcopy(examples)
    torch.manual_seed(seed)
    batch = collate(examples)
    _check(
        all(_same(a, b) for a, b in zip(before, examples, strict=True)),
        f"{type(collate).__name__} changed the examples it was given; a collator must copy.",
    )
    for key in ("input_ids", "attention_mask"):
        _check(key in batch, f"{type(collate).__name__}'s batch has no {key!r}.")
    return batch


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(list(a[k]) == list(b[k]) for k in a)


def _repad(batch: dict[str, Any], value: int) -> dict[str, Any]:
    """``batch`` with every padded position of ``input_ids`` set to ``value``."""
    pad = batch["attention_mask"] == 0
    _check(bool(pad.any()), "The contract examples should give a padded batch; none was.")
    return {**batch, "input_ids": batch["input_ids"].masked_fill(pad, value)}


@torch.no_grad()
def _check_loss(lm_type: LmType, components: LmComponents, batch: dict[str, Any]) -> None:
    name = lm_type.name
    torch.manual_seed(1)
    out = components.loss.loss_fn(batch, dataloader_name="lm")
    loss = out["loss"]
    _check(loss.dim() == 0 and math.isfinite(float(loss)), f"{name}: loss is not a finite scalar.")
    if "loss_sum" in out and "num_tokens" in out:
        mean = float(out["loss_sum"]) / max(int(out["num_tokens"]), 1)
        _check(
            math.isclose(mean, float(loss), rel_tol=1e-4, abs_tol=1e-5),
            f"{name}: loss {float(loss)} is not loss_sum / num_tokens ({mean}).",
        )
    torch.manual_seed(1)
    repadded = components.loss.loss_fn(_repad(batch, 7), dataloader_name="lm")["loss"]
    _check(
        math.isclose(float(repadded), float(loss), rel_tol=1e-4, abs_tol=1e-5),
        f"{name}: the loss changed ({float(loss)} -> {float(repadded)}) when only padded "
        "positions changed: padding must be masked out.",
    )


def _check_gradients(
    lm_type: LmType, model: nn.Module, components: LmComponents, batch: dict[str, Any]
) -> None:
    modules = [model] if components.extra is None else [model, components.extra]
    for module in modules:
        module.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    components.loss.loss_fn(batch, dataloader_name="lm")["loss"].backward()
    for module in modules:
        for pname, p in module.named_parameters():
            if not p.requires_grad:
                continue
            _check(p.grad is not None, f"{lm_type.name}: no gradient reaches {pname}.")
            assert p.grad is not None
            _check(
                bool(torch.isfinite(p.grad).all()),
                f"{lm_type.name}: {pname}'s gradient is not finite.",
            )
            _check(bool(p.grad.abs().sum() > 0), f"{lm_type.name}: {pname}'s gradient is all zero.")


def _check_predictor(
    lm_type: LmType, components: LmComponents, batch: dict[str, Any], rows: int
) -> None:
    name = lm_type.name
    predictor = components.predictor
    _check(predictor is not None, f"{name}: no predictor for seq2seq data.")
    assert predictor is not None
    torch.manual_seed(2)
    preds = predictor.predict(batch)
    _check(
        len(preds["ids"]) == rows and len(preds["text"]) == rows,
        f"{name}: predict returned {len(preds['ids'])} ids and {len(preds['text'])} texts for "
        f"{rows} rows.",
    )
    if "prompt_lengths" not in preds:  # predictions exclude the prompt: padding cannot matter
        torch.manual_seed(2)
        again = predictor.predict(_repad(batch, 7))
        _check(
            [p.tolist() for p in again["ids"]] == [p.tolist() for p in preds["ids"]],
            f"{name}: predictions changed when only padded positions changed.",
        )
    records = predictor.to_dict(batch, preds)
    _check(len(records) == rows, f"{name}: to_dict gave {len(records)} records for {rows} rows.")
    for record in records:
        _check(
            {"prompt", "target", "prediction"} <= set(record),
            f"{name}: a prediction record lacks prompt/target/prediction: {sorted(record)}.",
        )
    texts = predictor.generate(["12=", "abc="])
    _check(
        len(texts) == 2 and all(isinstance(t, str) for t in texts),
        f"{name}: generate did not return one string per prompt.",
    )


def check_lm_type(
    lm_type: LmType, family: str = "llama", *, tokenizer: Tokenizer | None = None
) -> None:
    """Run every shared check on ``lm_type`` with a tiny ``family`` backbone (see the module
    docstring); raise :class:`AssertionError` at the first failure."""
    tokenizer = tokenizer or ByteTokenizer()
    examples = contract_examples(tokenizer)
    model = contract_model(family, lm_type, tokenizer)
    for kind in lm_type.data_kinds:
        components = _build(lm_type, model, tokenizer, kind)
        batch = _collate(components.train_collator, examples[kind], seed=0)
        _check_loss(lm_type, components, batch)
        model.train()
        _check_gradients(lm_type, model, components, batch)
        if kind == "seq2seq":
            _check(
                components.prediction_collator is not None,
                f"{lm_type.name}: no prediction collator for seq2seq data.",
            )
            assert components.prediction_collator is not None
            pbatch = _collate(components.prediction_collator, examples[kind], seed=0)
            _check("target_ids" in pbatch, f"{lm_type.name}: prediction batches need target_ids.")
            _check_predictor(lm_type, components, pbatch, rows=len(examples[kind]))
