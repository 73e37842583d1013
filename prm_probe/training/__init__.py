"""The built-in GRPO / λ-GRPO trainer: config, tasks, models, the policy's distribution, sampling, losses,
rollout collection, checkpoints and the training loop. May import :mod:`prm_probe.core`.
"""
