"""The ILM predictor: insert one (gap, token) pair per step until the stop head says done."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.generation.sampling import next_token
from lmhub.lm.arlm.predictor import pad_id_of
from lmhub.lm.batching import prediction_records, prompt_examples
from lmhub.lm.ilm.collators import ILMSeq2SeqPredictionCollator
from lmhub.lm.ilm.loss import insertion_log_probs
from lmhub.lm.ilm.model import ILMModel
from lmhub.lm.ilm.types import ILMPredictionBatch

__all__ = ["ILMPredictor"]


class ILMPredictor:
    """Grows each prompt's target by insertions, one (gap, token) pair per row and step.

    Rows are laid out as in training: CLS, the prompt, and the separator ``sep_token_id`` (the
    BOS id; ``None``: none). Gaps inside the prompt stay closed: the first insertion goes right
    after the prompt (after its separator), and
    each inserted token opens the gap on its right. A row stops once the stop probability
    passes ``stop_threshold`` (before its step's insertion) or it has ``max_new_tokens``
    inserted tokens. The pair is the arg-max of the joint distribution at ``temperature=0``,
    else drawn from it (``top_k`` / ``top_p`` filter the joint logits, both applied when both
    are given), with a generator seeded by ``seed`` per call. ``forbidden_token_ids`` (the CLS,
    pad and BOS ids by default) are never inserted.

    ``predict`` returns ``"ids"`` (each row's inserted tokens, in sequence order) and
    ``"text"``.
    """

    def __init__(
        self,
        model: ILMModel,
        tokenizer: Tokenizer,
        *,
        max_new_tokens: int = 64,
        stop_threshold: float = 0.5,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        max_prompt_length: int | None = None,
        sep_token_id: int | None = None,
        forbidden_token_ids: Iterable[int] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.stop_threshold = stop_threshold
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        pad = pad_id_of(tokenizer)
        if forbidden_token_ids is None:
            specials = (model.cls_token_id, pad, tokenizer.bos_token_id)
            forbidden_token_ids = [i for i in specials if i is not None]
        self.forbidden_token_ids = sorted(set(forbidden_token_ids))
        self.collator = ILMSeq2SeqPredictionCollator(
            pad_token_id=pad,
            cls_token_id=model.cls_token_id,
            sep_token_id=sep_token_id,
            max_prompt_length=max_prompt_length,
        )

    @torch.no_grad()
    def insert(self, batch: ILMPredictionBatch) -> list[torch.Tensor]:
        """Each row's final sequence (CLS, prompt, inserted tokens); the batch is not modified."""
        device = batch["input_ids"].device
        lengths = batch["attention_mask"].sum(-1).tolist()
        rows = [ids[:n] for ids, n in zip(batch["input_ids"], lengths)]
        starts = [int(m.nonzero()[0]) for m in batch["insert_mask"]]  # the first open gap
        done = [False] * len(rows)
        generator = torch.Generator(device=device).manual_seed(self.seed)
        pad = self.collator.pad_token_id
        was_training = self.model.training
        self.model.eval()
        try:
            for _ in range(self.max_new_tokens + 1):
                active = [i for i, d in enumerate(done) if not d]
                if not active:
                    break
                ids = torch.nn.utils.rnn.pad_sequence(
                    [rows[i] for i in active], batch_first=True, padding_value=pad
                )
                width = ids.shape[1]
                positions = torch.arange(width, device=device)
                ends = torch.tensor([len(rows[i]) for i in active], device=device)
                begins = torch.tensor([starts[i] for i in active], device=device)
                attention = positions[None] < ends[:, None]
                open_gaps = attention & (positions[None] >= begins[:, None])
                logits, stop = self.model(
                    ids, attention_mask=attention.long(), insert_mask=open_gaps.long()
                )
                stopping = torch.zeros(len(active), dtype=torch.bool, device=device)
                if stop is not None:
                    stopping = torch.sigmoid(stop) > self.stop_threshold
                grown = ends - begins - 1 >= self.max_new_tokens
                stopping |= grown
                logits[..., self.forbidden_token_ids] = float("-inf")
                joint = insertion_log_probs(logits, open_gaps).flatten(1)
                picks = next_token(
                    joint,
                    temperature=self.temperature,
                    top_k=self.top_k,
                    top_p=self.top_p,
                    generator=generator,
                ).tolist()
                vocab = logits.shape[-1]
                for k, i in enumerate(active):
                    if bool(stopping[k]):
                        done[i] = True
                        continue
                    gap, token = divmod(picks[k], vocab)
                    new = torch.tensor([token], device=device, dtype=rows[i].dtype)
                    rows[i] = torch.cat([rows[i][: gap + 1], new, rows[i][gap + 1 :]])
        finally:
            self.model.train(was_training)
        return rows

    def predict(self, batch: ILMPredictionBatch) -> dict[str, Any]:
        """Insert into every row of ``batch``; return ``{"ids": [...], "text": [...]}``."""
        starts = [int(m.nonzero()[0]) for m in batch["insert_mask"]]
        ids = [row[start + 1 :] for row, start in zip(self.insert(batch), starts)]
        return {"ids": ids, "text": [self.tokenizer.decode(row) for row in ids]}

    def to_dict(self, batch: ILMPredictionBatch, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-lines record per row: ``prompt``, ``target`` and ``prediction`` texts, and
        the prediction's ids."""
        starts = [int(m.nonzero()[0]) for m in batch["insert_mask"]]
        end = 0 if self.collator.sep_token_id is not None else 1  # the separator is not prompt
        prompts = [row[1 : start + end] for row, start in zip(batch["input_ids"], starts)]
        return prediction_records(self.tokenizer, prompts, batch["target_ids"], preds)

    def generate(self, prompts: list[str]) -> list[str]:
        """Return the inserted text of each prompt (BOS added when the tokenizer wants it)."""
        examples = prompt_examples(self.tokenizer, prompts)
        batch = self.collator(examples)
        device = next(self.model.parameters()).device
        return self.predict({k: v.to(device) for k, v in batch.items()})["text"]  # type: ignore[misc]
