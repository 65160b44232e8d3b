"""The LM types ``lm_type`` can name: the built-in ones, those registered at run time, and any
importable module that defines ``LM_TYPE`` (``lm_type=my_pkg.my_type``).

What a type must provide is written in :mod:`lmhub.lm.lm_type`.

Example:
    >>> get_lm_type("arlm").causal
    True
"""

from __future__ import annotations

import importlib

from lmhub.errors import LmTypeError
from lmhub.lm.arlm.lm_type import LM_TYPE as ARLM
from lmhub.lm.ilm.lm_type import LM_TYPE as ILM
from lmhub.lm.lm_type import LmType
from lmhub.lm.mdlm.lm_type import LM_TYPE as MDLM
from lmhub.lm.mlm.lm_type import LM_TYPE as MLM
from lmhub.lm.seq2seq.lm_type import LM_TYPE as SEQ2SEQ

__all__ = ["LM_TYPES", "get_lm_type", "list_lm_types", "register_lm_type"]

LM_TYPES: dict[str, LmType] = {t.name: t for t in (ARLM, MLM, ILM, MDLM, SEQ2SEQ)}
"""``lm_type`` -> its record. Add a built-in type to the tuple above."""


def register_lm_type(lm_type: LmType, *, replace: bool = False) -> None:
    """Make ``lm_type`` selectable by its name.

    Raises:
        LmTypeError: when the name is taken and ``replace`` is off.
    """
    if lm_type.name in LM_TYPES and not replace and LM_TYPES[lm_type.name] is not lm_type:
        raise LmTypeError(
            lm_type.name,
            list(LM_TYPES),
            reason="is already registered; pick another name or pass replace=True",
        )
    LM_TYPES[lm_type.name] = lm_type


def list_lm_types() -> list[str]:
    """The registered type names, sorted."""
    return sorted(LM_TYPES)


def get_lm_type(name: str) -> LmType:
    """The type ``name`` names: a registered one, else a module path whose ``LM_TYPE`` it is.

    Raises:
        LmTypeError: for a name that is neither, with close matches.
    """
    if name in LM_TYPES:
        return LM_TYPES[name]
    if "." in name:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise LmTypeError(name, list(LM_TYPES), reason=f"cannot be imported ({exc})") from None
        found = getattr(module, "LM_TYPE", None)
        if not isinstance(found, LmType):
            raise LmTypeError(name, list(LM_TYPES), reason="defines no LM_TYPE = LmType(...)")
        return found
    raise LmTypeError(name, list(LM_TYPES))
