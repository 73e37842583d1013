"""What a log's metadata says about where its rows came from, as sentences a reader should see beside its numbers.

The importers (:mod:`prm_probe.integrations`) and the built-in trainer record these keys; ``prm-probe import`` and
``prm-probe stats`` print the sentences, and the library's users can call :func:`log_notes` on any log's metadata
(:func:`prm_probe.core.rollouts.read_metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["log_notes"]

_GROUPING = (("prm_probe.merged_groups", "group(s) merged identical prompts"),
             ("prm_probe.split_prompts", "prompt(s) were split into groups in file order"))


def log_notes(meta: Mapping[str, str]) -> list[str]:
    """Sentences about a log's provenance that its numbers depend on (re-tokenisation, step coverage, TRL
    batches, the reward's definition, grouping), in a fixed order; empty for a log sampled by prm_probe.

    Example:
        >>> log_notes({"prm_probe.step_coverage": "every step from 1 to 4"})
        ['steps: every step from 1 to 4']
    """
    notes = []
    if meta.get("prm_probe.token_source") == "retokenized":
        changed = meta.get("prm_probe.retokenization_text_changed", meta.get("prm_probe.retokenization_changed"))
        notes.append(f"token ids were re-tokenised from text ({changed or 'an unknown number of'} completion text(s) "
                     "do not survive decode(encode(text))): statistics are approximate; "
                     + meta.get("prm_probe.retokenization_note", "ids can differ from the sampled ones")
                     + "; log token ids for exact numbers")
    if meta.get("prm_probe.retokenization_ids_differ"):
        notes.append(f"re-tokenising this log's text would have changed the ids of "
                     f"{meta['prm_probe.retokenization_ids_differ']} completions (the sampled ids are used)")
    if meta.get("prm_probe.step_coverage"):
        notes.append(f"steps: {meta['prm_probe.step_coverage']}")
    if meta.get("prm_probe.step_meaning"):
        origin = meta.get("prm_probe.step_origin")
        notes.append(f"step numbers: {meta['prm_probe.step_meaning']}" + (f" (first step {origin})" if origin else ""))
    if meta.get("prm_probe.trl_repeated_batches"):
        notes.append(f"TRL files repeating the previous generation batch were kept once (steps "
                     f"{meta['prm_probe.trl_repeated_batches']} dropped)")
    if meta.get("prm_probe.trl_reward"):
        notes.append(f"reward = {meta['prm_probe.trl_reward']} (checked against TRL's logged advantage)")
    for key, text in _GROUPING:
        if meta.get(key):
            notes.append(f"{meta[key]} {text}")
    return notes
