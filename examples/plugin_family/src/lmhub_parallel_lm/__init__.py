"""An example lmhub plugin: the ``parallel_lm`` family, found through entry points.

Installed, this package declares (in its ``pyproject.toml``)::

    [project.entry-points."lmhub.families"]
    parallel_lm = "lmhub_parallel_lm:parallel_lm_family"

    [project.entry-points."lmhub.cards"]
    parallel_lm = "lmhub_parallel_lm:CARDS_DIR"

so ``lmhub.get_family("parallel_lm")``, ``lmhub families``, ``lmhub show parallel_lm_tiny`` and
``lmhub.load_model("parallel_lm_tiny")`` know it without lmhub importing it by name.

Example:
    >>> import lmhub
    >>> hub = lmhub.get_model_hub("parallel_lm")
    >>> model = hub.create_new_model(hub.get_arch_config("parallel_lm_tiny"))
"""

from pathlib import Path
from typing import Final

from lmhub.models.family import ModelFamily
from lmhub_parallel_lm.config import (
    PARALLEL_LM_FAMILY,
    ParallelLMConfig,
    parallel_lm_archs,
)
from lmhub_parallel_lm.interop import PARALLEL_LM_WEIGHT_MAP
from lmhub_parallel_lm.model import ParallelLMModel

CARDS_DIR: Final = Path(__file__).resolve().parent / "cards"
"""The folder of the family's asset cards (the ``lmhub.cards`` entry point names it)."""

parallel_lm_family: Final[ModelFamily[ParallelLMModel, ParallelLMConfig]] = ModelFamily(
    name=PARALLEL_LM_FAMILY,
    model_class=ParallelLMModel,
    config_class=ParallelLMConfig,
    archs=parallel_lm_archs,
    builder=ParallelLMModel,
    weight_map=PARALLEL_LM_WEIGHT_MAP,
    kind="decoder",
    description="Parallel attention + SwiGLU layers with RoPE and GQA (the example plugin in "
    "lmhub's examples/plugin_family).",
)

__all__ = [
    "CARDS_DIR",
    "PARALLEL_LM_FAMILY",
    "PARALLEL_LM_WEIGHT_MAP",
    "ParallelLMConfig",
    "ParallelLMModel",
    "parallel_lm_archs",
    "parallel_lm_family",
]
