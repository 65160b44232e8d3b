"""Each LM type's components for the trainer: collators, loss function and predictor.

The trainer is generic; ``lm_type`` picks a builder here. A new type (masked, insertion,
diffusion) adds one function and one entry to :data:`LM_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmhub.data.sources import DataKind
from lmhub.data.tokenizers import Tokenizer
from lmhub.errors import ConfigError
from lmhub.generation.seq2seq import is_encoder_decoder
from lmhub.lm.arlm import (
    ARLMLoss,
    ARLMPredictor,
    ARLMPretrainCollator,
    ARLMSeq2SeqCollator,
    pad_id_of,
)
from lmhub.lm.protocols import LossFunction, Predictor
from lmhub.lm.seq2seq import Seq2SeqCollator, Seq2SeqLoss, Seq2SeqPredictor

__all__ = ["LM_TYPES", "LmComponents", "arlm_components", "seq2seq_components"]


@dataclass(kw_only=True)
class LmComponents:
    """What the trainer needs of an LM type, built for one model, tokenizer and data kind."""

    train_collator: Callable[[list[dict[str, Any]]], Any]
    """Batches training (and ``lm`` validation) examples."""
    loss: LossFunction[Any]
    """The loss function of ``lm`` batches."""
    predictor: Predictor[Any] | None
    """The predictor of ``prediction`` batches (seq2seq data only)."""
    prediction_collator: Callable[[list[dict[str, Any]]], Any] | None
    """Batches ``prediction`` validation examples (seq2seq data only)."""
    pad_token_id: int
    """The id that pads rows."""


def arlm_components(
    model: Any, tokenizer: Tokenizer, kind: DataKind, *, seq_len: int, max_new_tokens: int
) -> LmComponents:
    """The autoregressive type: packed pre-training or prompt/target pairs.

    Raises:
        ConfigError: for an encoder-decoder, which trains with ``lm_type: seq2seq``.
    """
    if is_encoder_decoder(model):
        raise ConfigError(
            f"lm_type 'arlm' trains causal decoders, but {type(model).__name__} is an "
            "encoder-decoder. Set lm_type=seq2seq and train it on prompt/target data.",
            field="lm_type",
            value="arlm",
        )
    pad = pad_id_of(tokenizer)
    if kind == "text":
        return LmComponents(
            train_collator=ARLMPretrainCollator(pad_token_id=pad, max_length=seq_len),
            loss=ARLMLoss(model),
            predictor=None,
            prediction_collator=None,
            pad_token_id=pad,
        )
    predictor = ARLMPredictor(model, tokenizer, max_new_tokens=max_new_tokens)
    return LmComponents(
        train_collator=ARLMSeq2SeqCollator(pad_token_id=pad, max_length=seq_len),
        loss=ARLMLoss(model),
        predictor=predictor,
        prediction_collator=predictor.collator,
        pad_token_id=pad,
    )


def seq2seq_components(
    model: Any, tokenizer: Tokenizer, kind: DataKind, *, seq_len: int, max_new_tokens: int
) -> LmComponents:
    """The sequence-to-sequence type: an encoder-decoder reads the prompt (source) and learns
    the target with teacher forcing.

    Raises:
        ConfigError: for a model that is not an encoder-decoder, or text (not prompt/target)
            data.
    """
    if not is_encoder_decoder(model):
        raise ConfigError(
            f"lm_type 'seq2seq' trains encoder-decoder models, but {type(model).__name__} is "
            "not one. Pick an encoder-decoder (t5_tiny, transformer_tiny, ...) or lm_type "
            "'arlm'.",
            field="lm_type",
            value="seq2seq",
        )
    if kind != "seq2seq":
        raise ConfigError(
            "lm_type 'seq2seq' needs prompt/target data (JSONL rows with 'prompt' and 'target'), "
            "but the training data is plain text. Point data.train at seq2seq data.",
            field="lm_type",
            value="seq2seq",
        )
    pad = pad_id_of(tokenizer)
    predictor = Seq2SeqPredictor(model, tokenizer, max_new_tokens=max_new_tokens)
    return LmComponents(
        train_collator=Seq2SeqCollator(pad_token_id=pad, max_length=seq_len),
        loss=Seq2SeqLoss(model),
        predictor=predictor,
        prediction_collator=predictor.collator,
        pad_token_id=pad,
    )


LM_TYPES: dict[str, Callable[..., LmComponents]] = {
    "arlm": arlm_components,
    "seq2seq": seq2seq_components,
}
"""``lm_type`` -> the builder of its components."""
