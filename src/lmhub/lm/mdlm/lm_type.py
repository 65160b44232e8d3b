"""The MDLM type's registry record: a bidirectional backbone, a [MASK] absorbing state, and
optionally adaLN-zero time conditioning (its extra modules)."""

from __future__ import annotations

from lmhub.lm.lm_type import LmComponents, LmContext, LmType
from lmhub.lm.mdlm.collators import MDLMPretrainCollator, MDLMSeq2SeqCollator
from lmhub.lm.mdlm.loss import MDLMLoss
from lmhub.lm.mdlm.model import MDLMModel
from lmhub.lm.mdlm.options import MDLMOptions
from lmhub.lm.mdlm.predictor import MDLMPredictor
from lmhub.lm.mdlm.schedule import LogLinearSchedule

__all__ = ["LM_TYPE", "build_mdlm"]


def build_mdlm(ctx: LmContext) -> LmComponents:
    """The MDLM components of one run."""
    opts: MDLMOptions = ctx.options
    opts.validate()
    mask = ctx.special_ids["mask"]
    model = MDLMModel(
        ctx.model,
        mask_token_id=mask,
        time_conditioning=opts.time_conditioning,
        cond_dim=opts.cond_dim,
    )
    schedule = LogLinearSchedule(eps=opts.eps)
    noising = {
        "pad_token_id": ctx.pad_token_id,
        "mask_token_id": mask,
        "schedule": schedule,
        "min_t": opts.eps,
    }
    predictor = MDLMPredictor(
        model,
        ctx.tokenizer,
        target_length=opts.target_length or ctx.max_new_tokens,
        max_steps=opts.predict_steps,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        schedule=schedule,
    )
    if ctx.kind == "text":
        collator = MDLMPretrainCollator(**noising, max_length=ctx.seq_len)
    else:
        collator = MDLMSeq2SeqCollator(**noising, target_length=opts.target_length)
    return LmComponents(
        train_collator=collator,
        loss=MDLMLoss(model, schedule=schedule),
        predictor=predictor,
        prediction_collator=predictor.collator if ctx.kind == "seq2seq" else None,
        pad_token_id=ctx.pad_token_id,
        extra=model.conditioning,
    )


LM_TYPE = LmType(
    name="mdlm",
    description="Masked diffusion LM (MDLM): log-linear absorbing-state NELBO; reverse sampling.",
    causal=False,
    build=build_mdlm,
    special_tokens=("mask",),
    options=MDLMOptions,
)
