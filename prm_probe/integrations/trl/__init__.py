"""TRL: its completion logs (``log``), λ-GRPO on its ``GRPOTrainer`` (``grpo``, ``loss``), run records
(``record``), overlap telemetry (``telemetry``) and the ``trl-train`` launcher (``run``). Needs the ``trl`` extra.
"""
