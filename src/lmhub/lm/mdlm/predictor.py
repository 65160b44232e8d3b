"""The MDLM predictor: run the reverse diffusion from all-masked targets to clean text."""

from __future__ import annotations

from typing import Any

import torch

from lmhub.data.tokenizers import Tokenizer
from lmhub.generation.sampling import next_token
from lmhub.lm.arlm.predictor import pad_id_of
from lmhub.lm.batching import prediction_records, prompt_examples
from lmhub.lm.mdlm.collators import MDLMSeq2SeqPredictionCollator
from lmhub.lm.mdlm.model import MDLMModel
from lmhub.lm.mdlm.schedule import LogLinearSchedule
from lmhub.lm.mdlm.types import MDLMPredictionBatch

__all__ = ["MDLMPredictor"]


class MDLMPredictor:
    """Denoises the masked target positions of prediction batches over ``max_steps`` steps.

    Time runs from 1 to 0 in equal steps. At each step from ``t`` to ``s`` every still-masked
    position is unmasked with the reverse-process probability ``(p(t) - p(s)) / p(t)`` (``p``
    the mask probability, so ``(t - s) / t`` for the log-linear schedule) to a token drawn from
    the model's distribution (arg-max at ``temperature=0``; ``top_k`` and ``top_p`` filter the
    logits, both applied when both are given); unmasked tokens never change. The last step
    takes the arg-max at every position still masked. Randomness comes from a generator seeded
    with ``seed`` per call, so predictions are repeatable and the global RNG is untouched.

    ``predict`` returns ``"ids"``, each row's generated positions cut just after the first EOS
    (kept, as targets end with it) or before the first pad, and ``"text"``.
    """

    def __init__(
        self,
        model: MDLMModel,
        tokenizer: Tokenizer,
        *,
        target_length: int = 64,
        max_steps: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        max_prompt_length: int | None = None,
        schedule: LogLinearSchedule | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_steps = max_steps
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self.schedule = schedule or LogLinearSchedule()
        self.collator = MDLMSeq2SeqPredictionCollator(
            pad_token_id=pad_id_of(tokenizer),
            mask_token_id=model.mask_token_id,
            target_length=target_length,
            max_prompt_length=max_prompt_length,
        )

    @torch.no_grad()
    def sample(self, batch: MDLMPredictionBatch) -> torch.Tensor:
        """The batch's ``input_ids`` with every masked diffused position filled (a new tensor)."""
        x = batch["input_ids"].clone()
        attention_mask = batch["attention_mask"]
        diffused = batch["diffused_mask"].bool()
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        mask_id = self.model.mask_token_id
        times = torch.linspace(1.0, 0.0, self.max_steps + 1, device=x.device)
        was_training = self.model.training
        self.model.eval()
        try:
            for step in range(self.max_steps):
                still = diffused & (x == mask_id)
                if not bool(still.any()):
                    break
                t, s = times[step], times[step + 1]
                sigma = self.schedule.sigma(t).expand(x.shape[0])
                hidden = self.model(
                    x, sigma=sigma, attention_mask=attention_mask, return_hidden=True
                )
                logits = self.model.logits(hidden[still])  # [masked, vocab]
                last = step == self.max_steps - 1
                if last:
                    tokens, move = (
                        logits.argmax(-1),
                        torch.ones_like(logits[:, 0], dtype=torch.bool),
                    )
                else:
                    tokens = next_token(
                        logits,
                        temperature=self.temperature,
                        top_k=self.top_k,
                        top_p=self.top_p,
                        generator=generator,
                    )
                    p_t = self.schedule.mask_probability(t)
                    p_s = self.schedule.mask_probability(s)
                    u = torch.rand(tokens.shape, generator=generator, device=x.device)
                    move = u < (p_t - p_s) / p_t
                values = torch.where(move, tokens, torch.full_like(tokens, mask_id))
                x[still] = values
        finally:
            self.model.train(was_training)
        return x

    def predict(self, batch: MDLMPredictionBatch) -> dict[str, Any]:
        """Denoise every row of ``batch``; return ``{"ids": [...], "text": [...]}``."""
        x = self.sample(batch)
        diffused = batch["diffused_mask"].bool()
        ids = [self._cut(row[keep]) for row, keep in zip(x, diffused)]
        return {"ids": ids, "text": [self.tokenizer.decode(row) for row in ids]}

    def to_dict(self, batch: MDLMPredictionBatch, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """One JSON-lines record per row: ``prompt``, ``target`` and ``prediction`` texts, and
        the prediction's ids."""
        prompt_mask = batch["attention_mask"].bool() & ~batch["diffused_mask"].bool()
        prompts = [row[mask] for row, mask in zip(batch["input_ids"], prompt_mask)]
        return prediction_records(self.tokenizer, prompts, batch["target_ids"], preds)

    def generate(self, prompts: list[str]) -> list[str]:
        """Return the generated target of each prompt (BOS added when the tokenizer wants it)."""
        examples = prompt_examples(self.tokenizer, prompts)
        batch = self.collator(examples)
        device = next(self.model.parameters()).device
        return self.predict({k: v.to(device) for k, v in batch.items()})["text"]  # type: ignore[misc]

    def _cut(self, row: torch.Tensor) -> torch.Tensor:
        """Up to and with the first EOS; else up to the first pad (or mask) id."""
        eos, pad = self.tokenizer.eos_token_id, self.collator.pad_token_id
        if eos is not None and bool((row == eos).any()):
            return row[: int((row == eos).nonzero()[0]) + 1]
        stop = (row == pad) | (row == self.model.mask_token_id)
        return row[: int(stop.nonzero()[0])] if bool(stop.any()) else row
