"""The autoregressive type's registry record: packed pre-training or prompt/target pairs."""

from __future__ import annotations

from lmhub.lm.arlm.collators import ARLMPretrainCollator, ARLMSeq2SeqCollator
from lmhub.lm.arlm.loss import ARLMLoss
from lmhub.lm.arlm.predictor import ARLMPredictor
from lmhub.lm.lm_type import LmComponents, LmContext, LmType

__all__ = ["LM_TYPE", "build_arlm"]


def build_arlm(ctx: LmContext) -> LmComponents:
    """The ARLM components of one run; the predictor exists for seq2seq data and for
    ``generate`` either way."""
    pad = ctx.pad_token_id
    predictor = ARLMPredictor(ctx.model, ctx.tokenizer, max_new_tokens=ctx.max_new_tokens)
    if ctx.kind == "text":
        collator = ARLMPretrainCollator(pad_token_id=pad, max_length=ctx.seq_len)
    else:
        collator = ARLMSeq2SeqCollator(pad_token_id=pad, max_length=ctx.seq_len)
    return LmComponents(
        train_collator=collator,
        loss=ARLMLoss(ctx.model),
        predictor=predictor,
        prediction_collator=predictor.collator if ctx.kind == "seq2seq" else None,
        pad_token_id=pad,
    )


LM_TYPE = LmType(
    name="arlm",
    description="Autoregressive LM: next-token cross-entropy, generation left to right.",
    causal=True,
    build=build_arlm,
)
