"""The contracts every language-model type's components meet, whatever the type.

Following XLM, each LM type (autoregressive, masked, insertion, masked diffusion, ...) brings
its own collators, loss function and predictor, written to fit each other around the type's
batch ``TypedDict``; nothing here knows a type's fields. The trainer only relies on these
protocols: it feeds examples to a :class:`Collator`, batches from loaders named ``lm`` to the
:class:`LossFunction`, and batches from loaders named ``prediction`` to the :class:`Predictor`.

Examples (what a dataset yields, before collation) are plain dicts of token-id lists; the
shapes every type can start from are :class:`TokensExample` (pre-training) and
:class:`Seq2SeqExample` (a prompt and a target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

import torch
from typing_extensions import NotRequired  # typing has it from 3.11; torch needs this package

__all__ = [
    "IGNORE_INDEX",
    "Collator",
    "LossFunction",
    "LossOutput",
    "Predictor",
    "Seq2SeqExample",
    "TokensExample",
]

IGNORE_INDEX = -100
"""Label of positions that take no loss and no part in metrics (prompt, padding), as in
``F.cross_entropy(ignore_index=-100)``."""

BatchT_co = TypeVar("BatchT_co", bound=Mapping[str, Any], covariant=True)
BatchT_contra = TypeVar("BatchT_contra", bound=Mapping[str, Any], contravariant=True)


class TokensExample(TypedDict):
    """One pre-training example: a run of token ids (a document, or a packed row of several)."""

    input_ids: Sequence[int]
    """The token ids."""
    position_ids: NotRequired[Sequence[int]]
    """Packed rows only: positions that restart at 0 at each document."""
    document_ids: NotRequired[Sequence[int]]
    """Packed rows only: which document of the row each token belongs to (-1 for padding)."""


class Seq2SeqExample(TypedDict):
    """One sequence-to-sequence example: the model reads the prompt and learns the target."""

    prompt_ids: Sequence[int]
    """The prompt's token ids (BOS included when the tokenizer wants one)."""
    target_ids: Sequence[int]
    """The target's token ids (EOS included, so the model learns to stop)."""


class LossOutput(TypedDict):
    """What a loss function returns; types may add more entries, all of them logged."""

    loss: torch.Tensor
    """The scalar to minimise: the mean over this batch's target tokens (differentiable)."""
    loss_sum: NotRequired[torch.Tensor]
    """The sum over target tokens (differentiable), so that gradient accumulation can divide
    by the target tokens of all accumulated micro-batches instead of averaging means."""
    num_tokens: NotRequired[torch.Tensor]
    """How many target tokens the loss covers (an integer tensor)."""
    aux_loss: NotRequired[torch.Tensor]
    """An auxiliary loss per target token, already weighted (a mixture of experts' load
    balancing): the trainer adds it to the objective and logs it apart from ``loss``."""


@runtime_checkable
class Collator(Protocol[BatchT_co]):
    """Turns a list of examples into one batch of tensors."""

    def __call__(self, examples: list[dict[str, Any]]) -> BatchT_co:
        """Return the batch for ``examples``; never modifies them."""
        ...


@runtime_checkable
class LossFunction(Protocol[BatchT_contra]):
    """Computes a type's training loss from one of its batches."""

    def configure(self, trainer: Any) -> None:
        """One-time setup once the trainer has placed the model (device tensors, compile)."""
        ...

    def loss_fn(self, batch: BatchT_contra, *, dataloader_name: str | None = None) -> LossOutput:
        """Return the loss and what else to log; ``dataloader_name`` names the loader."""
        ...


@runtime_checkable
class Predictor(Protocol[BatchT_contra]):
    """Produces a type's predictions: from prediction batches, and from plain prompts."""

    def predict(self, batch: BatchT_contra) -> dict[str, Any]:
        """Return at least ``"ids"`` (one tensor of new token ids per row) and ``"text"``."""
        ...

    def to_dict(self, batch: BatchT_contra, preds: dict[str, Any]) -> list[dict[str, Any]]:
        """Return one JSON-serialisable dict per row (prompt, target, prediction, ...)."""
        ...

    def generate(self, prompts: list[str]) -> list[str]:
        """Return the model's continuation of each prompt, as text."""
        ...
