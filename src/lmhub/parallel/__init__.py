"""Running over several processes (gangs of torch.distributed process groups)."""

from lmhub.parallel.gangs import Gang, Gangs, fake_gangs

__all__ = ["Gang", "Gangs", "fake_gangs"]
