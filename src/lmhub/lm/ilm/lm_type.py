"""The ILM type's registry record: a bidirectional backbone, a CLS token, and a stop head and a
segment embedding (its extra modules)."""

from __future__ import annotations

from lmhub.lm.ilm.collators import ILMPretrainCollator, ILMSeq2SeqCollator
from lmhub.lm.ilm.loss import ILMLoss
from lmhub.lm.ilm.model import ILMModel
from lmhub.lm.ilm.options import ILMOptions
from lmhub.lm.ilm.predictor import ILMPredictor
from lmhub.lm.lm_type import LmComponents, LmContext, LmType

__all__ = ["LM_TYPE", "build_ilm"]


def build_ilm(ctx: LmContext) -> LmComponents:
    """The ILM components of one run."""
    opts: ILMOptions = ctx.options
    opts.validate()
    cls = ctx.special_ids["cls"]
    sep = ctx.tokenizer.bos_token_id  # XLM's layout: CLS, prompt, BOS, target
    model = ILMModel(
        ctx.model,
        cls_token_id=cls,
        stop_head=opts.stop_head,
        segment_embedding=opts.segment_embedding,
        position_embedding=opts.position_embedding,
        max_positions=opts.max_positions,
    )
    predictor = ILMPredictor(
        model,
        ctx.tokenizer,
        max_new_tokens=ctx.max_new_tokens,
        stop_threshold=opts.stop_threshold,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        sep_token_id=sep,
    )
    deleting = {"pad_token_id": ctx.pad_token_id, "cls_token_id": cls, "sep_token_id": sep}
    if ctx.kind == "text":
        specials = 1 if sep is None else 2
        collator = ILMPretrainCollator(**deleting, max_length=ctx.seq_len - specials)
    else:
        collator = ILMSeq2SeqCollator(**deleting)
    return LmComponents(
        train_collator=collator,
        loss=ILMLoss(model, stop_weight=opts.stop_weight, normalization=opts.loss_normalization),
        predictor=predictor,
        prediction_collator=predictor.collator if ctx.kind == "seq2seq" else None,
        pad_token_id=ctx.pad_token_id,
        extra=model.extra if len(model.extra) else None,
    )


LM_TYPE = LmType(
    name="ilm",
    description="Insertion LM: joint (gap x token) loss and a stop head; one insertion a step.",
    causal=False,
    build=build_ilm,
    special_tokens=("cls",),
    options=ILMOptions,
)
