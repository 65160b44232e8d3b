"""What every lmhub causal decoder shares around its layers: the token embedding ``embed``, the
output projection ``lm_head`` (optionally tied to it), and the logits step generation uses."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from lmhub.nn import moe


class DecoderLM(nn.Module):
    """Base class of decoder-only language models.

    Subclasses create ``self.config`` (with ``tie_embeddings``), ``self.embed`` and
    ``self.lm_head`` in ``__init__``, then call :meth:`finish_init`; their ``forward`` ends with
    ``return x if return_hidden else self.logits(x)``.
    """

    supports_kv_cache: ClassVar[bool] = True
    """Whether ``forward`` accepts a KV cache (generation recomputes everything otherwise)."""

    config: Any
    embed: nn.Embedding
    lm_head: nn.Linear

    def finish_init(self) -> None:
        """Tie weights, and initialise them unless the model is being built on the meta device."""
        self.tie_weights()
        if not self.embed.weight.is_meta:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every weight (each family defines its scheme)."""
        raise NotImplementedError

    @torch.no_grad()
    def normal_init_(self, std: float, *, reset: tuple[type[nn.Module], ...]) -> None:
        """The usual init most families build on: every ``nn.Linear``/``nn.Embedding`` weight
        from normal(0, ``std``), their biases zero, and ``reset_parameters()`` on every module of
        the ``reset`` types (norms, ALiBi slopes), in module order. Modules whose parameters
        are not ``nn.Linear``s (stacked experts, routers, attention sinks) define
        ``init_params_(std)`` and are initialised by it."""
        for module in self.modules():
            if hasattr(module, "init_params_"):
                module.init_params_(std)
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, reset):
                module.reset_parameters()

    def tie_weights(self) -> None:
        """Make ``lm_head`` share the embedding matrix when the config asks for it."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def auxiliary_loss(self) -> torch.Tensor | None:
        """The auxiliary training loss of the last training forward, already weighted, which
        the LM losses add to theirs (the MoE load-balancing loss); ``None`` when there is none."""
        return moe.auxiliary_loss(self)

    def router_load(self) -> torch.Tensor | None:
        """Tokens per expert ``[moe layers, experts]`` of the last training forward (``None``
        for a dense model), for logging."""
        return moe.router_load(self)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Project final hidden states (``return_hidden=True``) to vocabulary logits.

        Generation calls it on the last position only, to skip projecting the whole prompt.
        """
        return self.lm_head(hidden)
