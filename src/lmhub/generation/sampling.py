"""Choosing the next token from logits: repetition penalty, temperature, top-k, top-p.

Each function takes logits ``[batch, vocab]`` and returns new ones; the definitions match
Hugging Face's logits processors, applied in the same order (penalty, temperature, top-k,
top-p), so a seeded run draws from the same distribution.

Example:
    >>> logits = torch.tensor([[1.0, 3.0, 2.0]])
    >>> top_k_filter(logits, 2)
    tensor([[-inf, 3., 2.]])
    >>> next_token(logits, temperature=0.0)
    tensor([1])
"""

from __future__ import annotations

import torch


def is_greedy(temperature: float, top_k: int | None) -> bool:
    """Whether these settings always pick the most likely token."""
    return temperature == 0.0 or top_k == 1


def seen_tokens(
    token_ids: torch.Tensor, vocab_size: int, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Return a ``[batch, vocab]`` boolean table of the tokens in each row (padding left out).

    Example:
        >>> seen_tokens(torch.tensor([[2, 0]]), 4)
        tensor([[ True, False,  True, False]])
    """
    b = token_ids.shape[0]
    if attention_mask is not None:
        # Padding goes to an extra column that is dropped, so it never counts as seen.
        token_ids = token_ids.masked_fill(~attention_mask.bool(), vocab_size)
    seen = torch.zeros(b, vocab_size + 1, dtype=torch.bool, device=token_ids.device)
    seen.scatter_(1, token_ids, True)
    return seen[:, :vocab_size]


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divide the positive logits of seen tokens by ``penalty`` and multiply the negative ones.

    ``seen`` is a ``[batch, vocab]`` boolean table (see :func:`seen_tokens`). This is the CTRL
    paper's penalty as Hugging Face defines it: above 1 makes repeats less likely.

    Example:
        >>> apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]),
        ...                          torch.tensor([[True, True, False]]), 2.0)
        tensor([[ 1., -4.,  1.]])
    """
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the ``k``-th largest of its row to ``-inf`` (ties are kept)."""
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``p`` (nucleus).

    A token is kept when the tokens strictly more likely than it hold less than ``p`` of the
    probability, so the most likely token always stays.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # the mass of the tokens ranked above each one
    drop_sorted = before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of ``logits`` ``[batch, vocab]``; returns ``[batch]`` ids.

    ``temperature=0`` (or ``top_k=1``) is greedy: the arg-max. Otherwise the logits are divided
    by ``temperature``, filtered by ``top_k`` then ``top_p``, and a token is drawn from the
    softmax with ``generator``.
    """
    if is_greedy(temperature, top_k):
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
