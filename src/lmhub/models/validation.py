"""Checks shared by every family's ``config.validate()``, driven by the common field names."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from lmhub.errors import ConfigError

SIZE_LIMITS: Final[Mapping[str, int]] = {
    "model_dim": 2**20,
    "num_layers": 10_000,
    "num_heads": 2**16,
    "num_kv_heads": 2**16,
    "head_dim": 2**20,
    "ffn_inner_dim": 2**20,
    "vocab_size": 2**24,
    "max_seq_len": 2**28,
}
"""Upper bounds of the common sizes. Published models stay far below them (widths near 2**14,
FFNs near 2**16, up to a few hundred layers, vocabularies near 2**18, contexts near 2**24); a
value above one is a typo or a corrupt config, which would otherwise build layers for hours on
the meta device or try to allocate terabytes. The bounds also keep every tensor size far from
int64 overflow: no weight can exceed 2**44 elements."""

FLOAT_BOUNDS: Final[Mapping[str, tuple[float, bool]]] = {
    "rope_theta": (1.0, False),
    "norm_eps": (0.0, True),
    "init_std": (0.0, True),
}
"""Lower bound (and whether it is allowed) of the common float knobs, which must be finite: a
RoPE base of 1 or less has no meaning (and divides by zero in YaRN), a negative epsilon or
standard deviation gives NaNs or a torch error later."""

POSITIVE_FIELDS: Final = tuple(SIZE_LIMITS)
"""The common integer sizes, each of which must be positive and within :data:`SIZE_LIMITS`."""


def _shown(value: object) -> str:
    # str() of an int of more than 4300 digits raises; such values only need their size named.
    if isinstance(value, int) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit number"
    return repr(value)


def check_positive(config: Any, names: Iterable[str]) -> None:
    """Raise if any of the named fields that the config has (and has set) is not a positive
    integer, or exceeds its :data:`SIZE_LIMITS` bound."""
    for name in names:
        value = getattr(config, name, None)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(
                f"'{name}' must be an integer, not {_shown(value)}.", field=name, value=value
            )
        if value <= 0:
            raise ConfigError(
                f"'{name}' must be positive, not {_shown(value)}.", field=name, value=value
            )
        limit = SIZE_LIMITS.get(name)
        if limit is not None and value > limit:
            raise ConfigError(
                f"'{name}' is {_shown(value)}, above lmhub's limit of {limit:_} (far beyond any "
                "published model). Check the value: it is likely a typo or a corrupt config.",
                field=name,
                value=value,
            )


def check_floats(config: Any) -> None:
    """Raise if a :data:`FLOAT_BOUNDS` knob the config has is not a finite number in range."""
    for name, (low, inclusive) in FLOAT_BOUNDS.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        in_range = number and (value >= low if inclusive else value > low)
        if not (in_range and math.isfinite(value)):
            bound = f"at least {low}" if inclusive else f"above {low}"
            raise ConfigError(
                f"'{name}' must be a finite number {bound}, not {_shown(value)}.",
                field=name,
                value=value,
            )


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
    """Check the common knobs a config has: sizes (positive integers within
    :data:`SIZE_LIMITS`), float knobs (:data:`FLOAT_BOUNDS`), head layout, ``attn_impl``,
    ``dropout_p``.

    Example:
        >>> check_common(LlamaConfig(num_kv_heads=5))
        Traceback (most recent call last):
        ...
        lmhub.errors.ConfigError: 'num_heads' (32) must be a multiple of 'num_kv_heads' (5). ...
    """
    from lmhub.nn.attention import check_attn_impl

    check_positive(config, POSITIVE_FIELDS)
    check_floats(config)
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
        check_attn_impl(config.attn_impl)
    dropout = getattr(config, "dropout_p", None)
    if dropout is not None and not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
        raise ConfigError(
            f"'dropout_p' must be in [0, 1), not {dropout}.", field="dropout_p", value=dropout
        )
