"""Losses and pooling used by the head mixins (plain torch; no transformers import)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label value that contributes nothing to the loss (the Hugging Face convention)."""


def _token_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None
) -> torch.Tensor:
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1).to(flat_logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    # Trainer with gradient accumulation: sum here, divide by the tokens of all micro-batches.
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of position ``t``'s logits against ``labels[:, t + 1]``, skipping -100.

    ``labels`` are aligned with the inputs (usually ``labels = input_ids`` with padding set to
    -100); the shift happens here. The mean is over the labels that count.

    Example:
        >>> causal_lm_loss(torch.zeros(1, 3, 5), torch.tensor([[1, 2, -100]]))
        tensor(1.6094)
    """
    return _token_cross_entropy(logits[:, :-1], labels[:, 1:], num_items_in_batch)


def token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each position's logits against the label at the same position (masked LM,
    and seq2seq decoders whose inputs are already the labels shifted right), skipping -100."""
    return _token_cross_entropy(logits, labels, num_items_in_batch)


def pool_last_token(
    hidden: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    input_ids: torch.Tensor | None = None,
    pad_token_id: int | None = None,
) -> torch.Tensor:
    """Return each row's hidden state at its last real token ``[batch, dim]``.

    Real tokens come from ``attention_mask``, else from ``input_ids != pad_token_id``; with
    neither, the last position. Works for left and right padding alike.

    Example:
        >>> pool_last_token(h, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 0]]))  # rows 2 and 1
    """
    b, s, _ = hidden.shape
    if attention_mask is not None:
        real = attention_mask[:, -s:].to(hidden.device).bool()
    elif input_ids is not None and pad_token_id is not None:
        real = (input_ids != pad_token_id).to(hidden.device)
    else:
        return hidden[:, -1]
    positions = torch.arange(s, device=hidden.device)
    last = (positions * real).argmax(-1)
    return hidden[torch.arange(b, device=hidden.device), last]


def sequence_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, num_labels: int, problem_type: str | None
) -> tuple[torch.Tensor, str]:
    """Return ``(loss, problem_type)`` for a classification or regression head.

    ``problem_type`` ``None`` is inferred like transformers does: one label is regression, integer
    labels are single-label classification, float labels are multi-label classification.
    """
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    if problem_type == "regression":
        loss = F.mse_loss(logits.squeeze(-1).float(), labels.squeeze(-1).float())
    elif problem_type == "single_label_classification":
        loss = F.cross_entropy(logits.view(-1, num_labels).float(), labels.view(-1))
    elif problem_type == "multi_label_classification":
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    else:
        raise ValueError(
            f"problem_type is '{problem_type}'; use 'regression', 'single_label_classification' "
            "or 'multi_label_classification'."
        )
    return loss, problem_type
