"""Training utilities: gradient checkpointing, optimizer-in-backward, memory probes, and the
forward/backward smoke test behind ``lmhub model test``."""
