"""The masked LM type's registry record: a bidirectional backbone plus a [MASK] token."""

from __future__ import annotations

from lmhub.lm.lm_type import LmComponents, LmContext, LmType
from lmhub.lm.mlm.collators import MLMPretrainCollator, MLMSeq2SeqCollator
from lmhub.lm.mlm.loss import MLMLoss
from lmhub.lm.mlm.options import MLMOptions
from lmhub.lm.mlm.predictor import MLMPredictor

__all__ = ["LM_TYPE", "build_mlm"]


def build_mlm(ctx: LmContext) -> LmComponents:
    """The MLM components of one run."""
    opts: MLMOptions = ctx.options
    opts.validate()
    mask = ctx.special_ids["mask"]
    corruption = {
        "pad_token_id": ctx.pad_token_id,
        "mask_token_id": mask,
        "vocab_size": ctx.tokenizer.vocab_size,
        "mask_prob": opts.mask_prob,
        "mask_token_ratio": opts.mask_token_ratio,
        "random_token_ratio": opts.random_token_ratio,
        "max_length": ctx.seq_len,
    }
    predictor = MLMPredictor(
        ctx.model,
        ctx.tokenizer,
        mask_token_id=mask,
        pad_token_id=ctx.pad_token_id,
        steps=opts.predict_steps,
        target_length=opts.target_length,
        max_new_tokens=ctx.max_new_tokens,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        forbidden=list(ctx.special_ids.values()),
    )
    if ctx.kind == "text":
        collator = MLMPretrainCollator(**corruption)
    else:
        collator = MLMSeq2SeqCollator(
            **corruption, masking=opts.seq2seq_masking, target_length=opts.target_length
        )
    return LmComponents(
        train_collator=collator,
        loss=MLMLoss(ctx.model),
        predictor=predictor,
        prediction_collator=predictor.collator if ctx.kind == "seq2seq" else None,
        pad_token_id=ctx.pad_token_id,
    )


LM_TYPE = LmType(
    name="mlm",
    description="Masked LM (BERT-style): cross-entropy on masked tokens; iterative unmasking.",
    causal=False,
    build=build_mlm,
    special_tokens=("mask",),
    options=MLMOptions,
)
