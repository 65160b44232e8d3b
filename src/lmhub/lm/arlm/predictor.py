"""The ARLM predictor: continue prompts with :func:`lmhub.generate` and decode the new text."""

from __future__ import annotations

from typing import Any

import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.generation.generate import generate
from lmhub.lm.arlm.collators import ARLMSeq2SeqPredictionCollator
from lmhub.lm.arlm.types import ARLMPredictionBatch
from lmhub.lm.batching import prediction_records, prompt_examples
from lmhub.models.decoder import DecoderLM

__all__ = ["ARLMPredictor", "pad_id_of"]


def pad_id_of(tokenizer: Tokenizer) -> int:
    """The id to pad with: the tokenizer's PAD, else its EOS, else 0 (padding is masked anyway)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


class ARLMPredictor:
    """Generates continuations of (left-padded) prompts, greedy unless told to sample.

    ``predict`` returns ``"ids"``, one tensor of new ids per row cut just after the first EOS
    (kept, as targets end with it), and ``"text"``, those ids decoded without special tokens.

    Example:
        >>> predictor = ARLMPredictor(model, load_tokenizer("byte"))  # doctest: +SKIP
        >>> predictor.generate(["Once upon a time"])  # doctest: +SKIP
        [' there was ...']
    """

    def __init__(
        self,
        model: DecoderLM,
        tokenizer: Tokenizer,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        max_prompt_length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.generator = generator
        self.collator = ARLMSeq2SeqPredictionCollator(
            pad_token_id=pad_id_of(tokenizer), max_prompt_length=max_prompt_length
        )

    def predict(self, batch: ARLMPredictionBatch) -> dict[str, Any]:
        """Generate for every prompt of ``batch``; return ``{"ids": [...], "text": [...]}``."""
        prompts = batch["input_ids"]
        was_training = self.model.training
        self.model.eval()  # no dropout while generating
        try:
            out = generate(
                self.model,
                prompts,
                attention_mask=batch["attention_mask"],
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                top_k=self.top_k,
                top_p=self.top_p,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.collator.pad_token_id,
                generator=self.generator,
            )
        finally:
            self.model.train(was_training)
        ids = [self._until_eos(row) for row in out[:, prompts.shape[1] :]]
        return {"ids": ids, "text": [self.tokenizer.decode(row) for row in ids]}

    def to_dict(self, batch: ARLMPredictionBatch, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-lines record per row: ``prompt``, ``target`` and ``prediction`` texts, and
        the prediction's ids."""
        prompts = [
            row[mask.bool()] for row, mask in zip(batch["input_ids"], batch["attention_mask"])
        ]
        return prediction_records(self.tokenizer, prompts, batch["target_ids"], preds)

    def generate(self, prompts: list[str]) -> list[str]:
        """Return the continuation of each prompt (BOS added when the tokenizer wants it)."""
        examples = prompt_examples(self.tokenizer, prompts)
        return self.predict(self.collator(examples))["text"]

    def _until_eos(self, row: torch.Tensor) -> torch.Tensor:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            return row
        hits = (row == eos).nonzero()
        return row[: int(hits[0]) + 1] if len(hits) else row
