"""Other trainers' logs and runs: importers (TRL, verl, the authors' code) and λ-GRPO on TRL (``trl``).
May import :mod:`prm_probe.core` and :mod:`prm_probe.training`.
"""
