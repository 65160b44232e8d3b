"""Training: the :class:`~lmhub.train.trainer.Trainer` behind ``lmhub train`` (loop, schedules,
checkpoints and exact resume, metric sinks, progress), plus gradient checkpointing,
optimizer-in-backward, memory probes, and the smoke test behind ``lmhub model test``."""
