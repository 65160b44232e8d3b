"""Running over several processes: gangs over a DeviceMesh, tensor-parallel plans, FSDP2.

Only the gangs are imported here; ``lmhub.parallel.setup``, ``.tp``, ``.fsdp`` and ``.load``
import ``torch.distributed`` (0.6 s), which ``import lmhub`` must not pay for.
:func:`setup_gangs` is forwarded to its module on first use.
"""

from typing import Any

from lmhub.parallel.gangs import Gang, Gangs, fake_gangs

__all__ = ["Gang", "Gangs", "fake_gangs", "setup_gangs"]


def __getattr__(name: str) -> Any:
    if name == "setup_gangs":
        from lmhub.parallel.setup import setup_gangs

        return setup_gangs
    raise AttributeError(f"module 'lmhub.parallel' has no attribute '{name}'")
