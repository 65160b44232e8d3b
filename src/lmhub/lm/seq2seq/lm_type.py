"""The sequence-to-sequence type's registry record: an encoder-decoder reads the prompt
(source) and learns the target with teacher forcing."""

from __future__ import annotations

from lmhub.errors import ConfigError
from lmhub.generation.seq2seq import is_encoder_decoder
from lmhub.lm.lm_type import LmComponents, LmContext, LmType
from lmhub.lm.seq2seq.collators import Seq2SeqCollator
from lmhub.lm.seq2seq.loss import Seq2SeqLoss
from lmhub.lm.seq2seq.predictor import Seq2SeqPredictor

__all__ = ["LM_TYPE", "build_seq2seq"]


def build_seq2seq(ctx: LmContext) -> LmComponents:
    """The seq2seq components of one run.

    Raises:
        ConfigError: for a model that is not an encoder-decoder, or text (not prompt/target)
            data.
    """
    if not is_encoder_decoder(ctx.model):
        raise ConfigError(
            f"lm_type 'seq2seq' trains encoder-decoder models, but {type(ctx.model).__name__} "
            "is not one. Pick an encoder-decoder (t5_tiny, transformer_tiny, ...) or another "
            "lm_type (arlm, mlm, ...).",
            field="lm_type",
            value="seq2seq",
        )
    if ctx.kind != "seq2seq":
        raise ConfigError(
            "lm_type 'seq2seq' needs prompt/target data (JSONL rows with 'prompt' and 'target'), "
            "but the training data is plain text. Point data.train at seq2seq data.",
            field="lm_type",
            value="seq2seq",
        )
    predictor = Seq2SeqPredictor(ctx.model, ctx.tokenizer, max_new_tokens=ctx.max_new_tokens)
    return LmComponents(
        train_collator=Seq2SeqCollator(pad_token_id=ctx.pad_token_id, max_length=ctx.seq_len),
        loss=Seq2SeqLoss(ctx.model),
        predictor=predictor,
        prediction_collator=predictor.collator,
        pad_token_id=ctx.pad_token_id,
    )


LM_TYPE = LmType(
    name="seq2seq",
    description="Encoder-decoder: teacher-forced target cross-entropy, greedy or beam decoding.",
    # The decoder attends causally; the encoder always attends both ways.
    causal=True,
    build=build_seq2seq,
    data_kinds=("seq2seq",),
    family_kinds=("encoder_decoder",),
)
