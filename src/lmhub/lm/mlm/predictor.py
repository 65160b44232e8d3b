"""The MLM predictor: fill a target's [MASK] slots by iterative unmasking, most confident
first."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.generation.sampling import next_token
from lmhub.lm.batching import prediction_records, prompt_examples
from lmhub.lm.mlm.collators import MLMSeq2SeqPredictionCollator
from lmhub.lm.mlm.loss import bidirectional_hidden
from lmhub.lm.mlm.types import MLMPredictionBatch
from lmhub.models.decoder import DecoderLM

__all__ = ["MLMPredictor", "unmask"]


@torch.no_grad()
def unmask(
    model: DecoderLM,
    batch: MLMPredictionBatch,
    *,
    mask_token_id: int,
    steps: int,
    forbidden: list[int],
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill every [MASK] of ``batch["input_ids"]`` in at most ``steps`` model calls; return the
    new ids (the batch is not modified).

    Each step predicts a token for every remaining slot (the ``forbidden`` ids never) and keeps
    the ``ceil(remaining / steps left)`` of each row whose chosen token is most probable; the
    others stay masked for the next step, which sees the kept ones.
    """
    ids = batch["input_ids"].clone()
    slots = (ids == mask_token_id) & batch["attention_mask"].bool()
    for step in range(steps):
        remaining = slots.sum(dim=-1)
        if not bool(remaining.any()):
            break
        hidden = bidirectional_hidden(model, {**batch, "input_ids": ids})
        logits = model.logits(hidden[slots]).float()
        logits[:, forbidden] = -math.inf
        chosen = next_token(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        confidence = torch.full(ids.shape, -math.inf, device=ids.device)
        confidence[slots] = logits.softmax(dim=-1).gather(1, chosen[:, None]).squeeze(1)
        proposal = torch.zeros_like(ids)
        proposal[slots] = chosen
        take = torch.ceil(remaining / (steps - step)).long()
        rank = confidence.argsort(dim=-1, descending=True).argsort(dim=-1)
        keep = slots & (rank < take[:, None])
        ids = torch.where(keep, proposal, ids)
        slots = slots & ~keep
    return ids


class MLMPredictor:
    """Predicts the target of each prompt by iterative unmasking over ``steps`` model calls.

    ``predict`` returns ``"ids"`` (one tensor per row: the filled slots, cut just after the first
    EOS, which is kept as targets end with it) and ``"text"`` (those ids decoded).
    """

    def __init__(
        self,
        model: DecoderLM,
        tokenizer: Tokenizer,
        *,
        mask_token_id: int,
        pad_token_id: int,
        steps: int = 8,
        target_length: int | None = None,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        forbidden: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """``forbidden``: ids never predicted besides [MASK] and BOS (the type's specials)."""
        self.model = model
        self.tokenizer = tokenizer
        self.mask_token_id = mask_token_id
        self.steps = steps
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generator = generator
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.forbidden = sorted({mask_token_id, *bos, *(forbidden or [])})
        self.collator = MLMSeq2SeqPredictionCollator(
            pad_token_id=pad_token_id, mask_token_id=mask_token_id, target_length=target_length
        )

    def predict(self, batch: MLMPredictionBatch) -> dict[str, Any]:
        """Fill the slots of ``batch``; return ``{"ids": [...], "text": [...]}``."""
        was_training = self.model.training
        self.model.eval()
        try:
            out = unmask(
                self.model,
                batch,
                mask_token_id=self.mask_token_id,
                steps=self.steps,
                forbidden=self.forbidden,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                generator=self.generator,
            )
        finally:
            self.model.train(was_training)
        lengths = batch["attention_mask"].sum(dim=-1)
        ids = [
            self._until_eos(row[int(start) : int(end)])
            for row, start, end in zip(out, batch["prompt_lengths"], lengths)
        ]
        return {"ids": ids, "text": [self.tokenizer.decode(row) for row in ids]}

    def to_dict(self, batch: MLMPredictionBatch, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-lines record per row: ``prompt``, ``target`` and ``prediction`` texts, and
        the prediction's ids."""
        lengths = [int(n) for n in batch["prompt_lengths"]]
        prompts = [row[:n] for row, n in zip(batch["input_ids"], lengths)]
        return prediction_records(self.tokenizer, prompts, batch["target_ids"], preds)

    def generate(self, prompts: list[str]) -> list[str]:
        """Fill ``target_length`` (else ``max_new_tokens``) slots after each prompt."""
        collator = dataclasses.replace(
            self.collator, target_length=self.collator.target_length or self.max_new_tokens
        )
        examples = prompt_examples(self.tokenizer, prompts)
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in collator(examples).items()}
        return self.predict(batch)["text"]  # type: ignore[arg-type]

    def _until_eos(self, row: torch.Tensor) -> torch.Tensor:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            return row
        hits = (row == eos).nonzero()
        return row[: int(hits[0]) + 1] if len(hits) else row
