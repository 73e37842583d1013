"""Other trainers' logs and runs. One module per importer: ``trl/completions`` (TRL completions Parquet),
``verl``, ``grpo_prm`` (the authors' code), ``jsonl_ids`` (open-instruct style token ids) and ``generic``; what they
share in ``records`` (files, fields, grouping) and ``tokens`` (re-tokenisation); the registry and the entry points
in ``importers``. λ-GRPO on TRL's trainer is under ``trl``. May import :mod:`prm_probe.core` and
:mod:`prm_probe.training`.
"""
