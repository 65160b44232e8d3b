"""The seq2seq loss: teacher-forced cross-entropy over the target tokens."""

from __future__ import annotations

from typing import Any

from lmhub.lm.cross_entropy import CHUNK_SIZE, chunked_cross_entropy
from lmhub.lm.protocols import LossOutput
from lmhub.lm.seq2seq.types import IGNORE_INDEX, Seq2SeqBatch
from lmhub.models.encoder_decoder import EncoderDecoderLM

__all__ = ["Seq2SeqLoss"]


class Seq2SeqLoss:
    """Cross-entropy of an encoder-decoder's decoder: it reads the labels shifted right behind
    its start token and predicts each label at its own position.

    The decoder runs up to its final hidden states; only positions with a label are projected
    by the model's own ``logits`` step, a chunk at a time
    (:func:`~lmhub.lm.cross_entropy.chunked_cross_entropy`), so the full float32 logits never
    exist. Returns ``loss`` (mean over target tokens), ``loss_sum`` and ``num_tokens``.

    Example:
        >>> loss = Seq2SeqLoss(model)  # doctest: +SKIP
        >>> loss.loss_fn(Seq2SeqCollator(pad_token_id=0)(examples))["loss"]  # doctest: +SKIP
    """

    def __init__(self, model: EncoderDecoderLM, *, chunk_size: int = CHUNK_SIZE) -> None:
        """``chunk_size``: positions projected to the vocabulary at a time."""
        self.model = model
        self.chunk_size = chunk_size

    def configure(self, trainer: Any) -> None:
        """Nothing to set up: the loss reads the model's head at each call."""

    def loss_fn(self, batch: Seq2SeqBatch, *, dataloader_name: str | None = None) -> LossOutput:
        """Return ``loss``, ``loss_sum`` and ``num_tokens`` for ``batch``."""
        labels = batch["labels"]
        hidden = self.model(
            batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=labels,
            return_hidden=True,
        )
        scored = labels != IGNORE_INDEX
        loss_sum = chunked_cross_entropy(
            hidden[scored], labels[scored], self.model.logits, chunk_size=self.chunk_size
        )
        num_tokens = scored.sum()
        return {
            "loss": loss_sum / num_tokens.clamp(min=1),
            "loss_sum": loss_sum,
            "num_tokens": num_tokens,
        }
