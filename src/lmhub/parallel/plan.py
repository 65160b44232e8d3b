"""Tensor-parallel plans as data: module-name patterns mapped to how each module is split.

A family declares ``tp_plan(config, tp_size) -> TpPlan`` next to its model;
:func:`lmhub.parallel.tp.apply_tp` turns the names into torch's DTensor styles. Keeping plans as
strings keeps ``torch.distributed.tensor`` (0.6 s to import) out of ``import lmhub``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from lmhub.errors import ParallelLayoutError

TpStyle = Literal[
    "colwise",
    "rowwise",
    "colwise_gather",
    "rowwise_from_replicated",
    "vocab_embedding",
    "vocab_output",
]
"""How a module is split over the tensor-parallel gang:

- ``colwise``: a linear's output features (its weight's rows and its bias) are split; the
  output stays split along the last dimension (e.g. q/k/v, gate/up: each rank owns some heads).
- ``rowwise``: a linear's input features are split and the partial outputs summed (o/down).
- ``colwise_gather``: split like ``colwise``, but the output is gathered whole on every rank
  (for what must see the whole projection next, e.g. OLMo 2's q/k norms over all heads).
- ``rowwise_from_replicated``: split like ``rowwise``, taking a whole (replicated) input that
  each rank slices itself (the partner of ``colwise_gather``).
- ``vocab_embedding``: an embedding's vocabulary rows are split; each rank looks up its rows
  and the results are summed.
- ``vocab_output``: the output projection's vocabulary rows are split; the logits are gathered.
"""

TpPlan = Mapping[str, TpStyle]
"""Module-name patterns (``*`` matches one name part, e.g. ``"layers.*.attn.q_proj"``) to styles."""


def require_divisible(field: str, value: int, tp_size: int, *, family: str) -> None:
    """Raise :class:`ParallelLayoutError` unless ``tp_size`` divides ``value``."""
    if value % tp_size != 0:
        raise ParallelLayoutError(
            f"The {family} config's {field} ({value}) must be a multiple of the tensor-parallel "
            f"size ({tp_size}): each rank holds {field} / tp_size of them. Pick a tp_size that "
            f"divides {value}.",
            field=field,
            value=value,
            divisor=tp_size,
        )
