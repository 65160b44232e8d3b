"""Checks shared by every family's ``config.validate()``, driven by the common field names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lmhub.errors import ConfigError

POSITIVE_FIELDS = (
    "model_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "ffn_inner_dim",
    "vocab_size", "max_seq_len",
)  # fmt: skip


def check_positive(config: Any, names: Iterable[str]) -> None:
    """Raise if any of the named fields that the config has (and has set) is not positive."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None and value <= 0:
            raise ConfigError(f"'{name}' must be positive, not {value}.", field=name, value=value)


def check_choice(config: Any, name: str, choices: Iterable[str]) -> None:
    """Raise if field ``name`` is not one of ``choices``."""
    options = tuple(choices)
    value = getattr(config, name)
    if value not in options:
        raise ConfigError(
            f"'{name}' is '{value}', which is not one of {', '.join(options)}.",
            field=name,
            value=value,
        )


def check_common(config: Any) -> None:
    """Check the common knobs a config has: sizes, head layout, ``attn_impl``, ``dropout_p``.

    Example:
        >>> check_common(LlamaConfig(num_kv_heads=5))
        Traceback (most recent call last):
        ...
        lmhub.errors.ConfigError: 'num_heads' (32) must be a multiple of 'num_kv_heads' (5). ...
    """
    from lmhub.nn.attention import ATTN_IMPLS

    check_positive(config, POSITIVE_FIELDS)
    heads = getattr(config, "num_heads", None)
    kv_heads = getattr(config, "num_kv_heads", None)
    if heads is not None and kv_heads is not None and heads % kv_heads:
        raise ConfigError(
            f"'num_heads' ({heads}) must be a multiple of 'num_kv_heads' ({kv_heads}). "
            "Change one of them.",
            field="num_kv_heads",
            value=kv_heads,
        )
    derived_head_dim = heads is not None and getattr(config, "head_dim", None) is None
    if derived_head_dim and config.model_dim % heads:
        has_head_dim = hasattr(config, "head_dim")
        raise ConfigError(
            f"'model_dim' ({config.model_dim}) is not divisible by 'num_heads' ({heads}). "
            + ("Set 'head_dim' explicitly or change " if has_head_dim else "Change ")
            + "one of them.",
            field="head_dim" if has_head_dim else "num_heads",
            value=heads,
        )
    if hasattr(config, "attn_impl"):
        check_choice(config, "attn_impl", ATTN_IMPLS)
    dropout = getattr(config, "dropout_p", None)
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ConfigError(
            f"'dropout_p' must be in [0, 1), not {dropout}.", field="dropout_p", value=dropout
        )
