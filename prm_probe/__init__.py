"""prm_probe: measure how GRPO acts as a process reward model (Sullivan & Koller, ICML 2026).

The public API is resolved lazily, so ``import prm_probe`` is cheap and imports no torch, transformers,
matplotlib, seaborn or scipy. Main entry points:

* :func:`process_set_sizes` — ``|λ(i, t)|`` for every token of one group;
* :func:`process_sets` — the vectorised engine over many groups (:class:`PackedGroups` in, :class:`ProcessSets` out);
* :func:`implied_prm` — the implied per-token process reward and PRM-aware advantage of one group;
* :func:`overlap_stats` — overlap statistics of a rollout log per completion, group and step;
* :func:`read_rollouts`, :func:`write_rollouts`, :func:`validate_log` — the rollout-log format;
* :class:`GroupTrie` — one group's trie to explore or print;
* :func:`prm_quality` — each shared node's implied step reward against a Monte-Carlo (or exact) value of its
  prefix, as a :class:`PrmQuality` (``.nodes``, ``.summary()``, ``.frame(by)``, ``.tokens()``, ``.write()``,
  ``.plot()``; the functions behind it: :func:`prm_quality_summary`, :func:`prm_quality_tokens`);
* :func:`train`, :func:`load_config` — the GRPO / λ-GRPO trainer; :func:`compare_runs` — comparing runs;
* :func:`explore` — one self-contained HTML page (and a Jupyter view) of a log's tries, rewards and overlap;
* :func:`import_log` — converting TRL / verl / other logs to the canonical format; :func:`record_completion_ids`
  — a TRL reward function that makes a plain TRL run log its sampled token ids;
* :class:`LambdaGRPOTrainer`, :class:`LambdaGRPOConfig` — λ-GRPO on TRL's (multi-GPU) ``GRPOTrainer``;
  :func:`attach_overlap_telemetry` — overlap statistics for any TRL GRPO run (extra ``trl``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PackedGroups": "prm_probe.core.trie",
    "ProcessSets": "prm_probe.core.trie",
    "process_sets": "prm_probe.core.trie",
    "process_set_sizes": "prm_probe.core.trie",
    "GroupTrie": "prm_probe.core.group_trie",
    "outcome_advantages": "prm_probe.core.prm",
    "node_values": "prm_probe.core.prm",
    "implied_prm": "prm_probe.core.prm",
    "implied_prm_frame": "prm_probe.core.prm",
    "identity_check": "prm_probe.core.prm",
    "overlap_stats": "prm_probe.core.stats",
    "OverlapStats": "prm_probe.core.stats",
    "completion_stats": "prm_probe.core.stats",
    "group_stats": "prm_probe.core.stats",
    "read_rollouts": "prm_probe.core.rollouts",
    "iter_steps": "prm_probe.core.rollouts",
    "write_rollouts": "prm_probe.core.rollouts",
    "pack_groups": "prm_probe.core.rollouts",
    "read_metadata": "prm_probe.core.rollouts",
    "validate_log": "prm_probe.core.validate",
    "ValidationReport": "prm_probe.core.validate",
    "ROLLOUT_SCHEMA": "prm_probe.core.schema",
    "PrmQuality": "prm_probe.views.prm_quality",
    "measure_prm_quality": "prm_probe.training.prm_quality",
    "prm_quality_summary": "prm_probe.core.prm_quality",
    "prm_quality_tokens": "prm_probe.core.prm_quality",
    "prm_quality_token_summary": "prm_probe.core.prm_quality",
    "compare_runs": "prm_probe.views.compare",
    "RunComparison": "prm_probe.views.compare",
    "import_log": "prm_probe.integrations.importers",
    "import_to_parquet": "prm_probe.integrations.importers",
    "load_config": "prm_probe.training.config",
    "TrainConfig": "prm_probe.training.config",
    "train": "prm_probe.training.trainer",
    "LambdaGRPOTrainer": "prm_probe.integrations.trl.grpo",
    "LambdaGRPOConfig": "prm_probe.integrations.trl.grpo",
    "attach_overlap_telemetry": "prm_probe.integrations.trl.telemetry",
    "RunRecordCallback": "prm_probe.integrations.trl.record",
    "record_completion_ids": "prm_probe.integrations.trl.log",
    "PrmProbeError": "prm_probe.errors",
    "SchemaError": "prm_probe.errors",
    "LogReadError": "prm_probe.errors",
    "ConfigError": "prm_probe.errors",
    "UnknownNameError": "prm_probe.errors",
    "CheckpointError": "prm_probe.errors",
    "RewardError": "prm_probe.errors",
}

__all__ = ["__version__", "explore", "prm_quality", *_EXPORTS]


def explore(log: Any, *, tokenizer: str | None = None, **options: Any) -> Any:
    """The explorer of a rollout log (:func:`prm_probe.views.explore.explore`; ``options``: ``max_groups``,
    ``prm_quality``, ``runs``): an object that displays inline in Jupyter and has ``.save(path)``. Spans are text
    with ``tokenizer`` (a path or ``smollm2-135m``), or with the log's recorded tokenizer where it loads offline
    (the ``train`` extra), else token ids."""
    from prm_probe.views.explore import explore as build

    decode, note = None, ""
    try:
        from prm_probe.training.models import log_decoder

        decode, why = log_decoder(log, tokenizer)
        note = "" if decode else f"spans are token ids: {why}"
    except ImportError as exc:  # the core install has no tokenizer library
        if tokenizer:
            raise
        note = f"spans are token ids: no tokenizer library is installed ({exc.name}; the 'train' extra has one)"
    return build(log, decode=decode, tokenizer_note=note, **options)


def prm_quality(checkpoint: Any, log: Any, **options: Any) -> Any:
    """How good GRPO's implied PRM is on one log, under a checkpoint: the measurement
    (:func:`~prm_probe.training.prm_quality.measure_prm_quality`, which takes ``options``: ``rollouts``,
    ``max_nodes``, ``step``, ``seed``, ``device``, ``out``, ``progress``, ...) as a
    :class:`~prm_probe.views.prm_quality.PrmQuality` (needs the ``train`` and ``plots`` extras)."""
    from prm_probe.training.prm_quality import measure_prm_quality
    from prm_probe.views.prm_quality import PrmQuality

    return PrmQuality(measure_prm_quality(checkpoint, log, **options), log)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prm_probe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
