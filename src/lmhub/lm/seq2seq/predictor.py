"""The seq2seq predictor: generate targets for sources (greedy or beam search) and decode them."""

from __future__ import annotations

from typing import Any

import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.generation.seq2seq import generate_seq2seq
from lmhub.lm.arlm.predictor import pad_id_of
from lmhub.lm.batching import prediction_records, prompt_examples
from lmhub.lm.seq2seq.collators import Seq2SeqPredictionCollator
from lmhub.lm.seq2seq.types import Seq2SeqPredictionBatch
from lmhub.models.encoder_decoder import EncoderDecoderLM

__all__ = ["Seq2SeqPredictor"]


class Seq2SeqPredictor:
    """Generates a target for every source of a batch, greedily or with ``num_beams`` beams.

    ``predict`` returns ``"ids"``, one tensor of generated ids per row (the decoder start token
    dropped, cut just after the first EOS, which targets end with too), and ``"text"``, those
    ids decoded without special tokens.

    Example:
        >>> predictor = Seq2SeqPredictor(model, load_tokenizer("byte"), num_beams=4)
        >>> predictor.generate(["12345678"])  # doctest: +SKIP
        ['87654321']
    """

    def __init__(
        self,
        model: EncoderDecoderLM,
        tokenizer: Tokenizer,
        *,
        max_new_tokens: int = 64,
        num_beams: int = 1,
        max_source_length: int | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.collator = Seq2SeqPredictionCollator(
            pad_token_id=pad_id_of(tokenizer), max_length=max_source_length
        )

    def predict(self, batch: Seq2SeqPredictionBatch) -> dict[str, Any]:
        """Generate for every source of ``batch``; return ``{"ids": [...], "text": [...]}``."""
        was_training = self.model.training
        self.model.eval()  # no dropout while generating
        try:
            out = generate_seq2seq(
                self.model,
                batch["input_ids"],
                attention_mask=batch["attention_mask"],
                max_new_tokens=self.max_new_tokens,
                num_beams=self.num_beams,
                eos_token_id=self.tokenizer.eos_token_id,
            )
        finally:
            self.model.train(was_training)
        ids = [self._until_eos(row) for row in out[:, 1:]]
        return {"ids": ids, "text": [self.tokenizer.decode(row) for row in ids]}

    def to_dict(self, batch: Seq2SeqPredictionBatch, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-lines record per row: ``prompt`` (the source), ``target`` and ``prediction``
        texts, as every LM type writes them, and the prediction's ids."""
        sources = [
            row[mask.bool()] for row, mask in zip(batch["input_ids"], batch["attention_mask"])
        ]
        return prediction_records(self.tokenizer, sources, batch["target_ids"], preds)

    def generate(self, prompts: list[str]) -> list[str]:
        """Return the model's target for each source text (BOS added when the tokenizer wants
        it, as the training data's prompts)."""
        examples = prompt_examples(self.tokenizer, prompts)
        return self.predict(self.collator(examples))["text"]

    def _until_eos(self, row: torch.Tensor) -> torch.Tensor:
        eos = self.tokenizer.eos_token_id
        if eos is None:
            return row
        hits = (row == eos).nonzero()
        return row[: int(hits[0]) + 1] if len(hits) else row
