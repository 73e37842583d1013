"""Rewrite the metadata of a log written by an early ``prm-probe sample`` (a flat ``config``: ``task`` a name,
``task_options``, ``groups`` and the sampling keys at the top) into the one shape every log now carries: a run
config (task, model, sampling) as the trainer writes it, the task's identity (``prm_probe.task``), and what was
sampled (``prm_probe.sample``). The rows are not touched: the script checks that the table is unchanged.

This is how ``prm_probe/data/sample_rollouts.parquet`` (sampled on 2026-12-02, see data/README.md) got its current
metadata on 2026-12-04:

    python data/upgrade_sample_metadata.py prm_probe/data/sample_rollouts.parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pyarrow.parquet as pq

from prm_probe.core.rollouts import read_metadata, read_rollouts, write_rollouts
from prm_probe.training.collect import get_task_from
from prm_probe.training.config import config_from_dict, config_to_dict
from prm_probe.training.tasks.identity import METADATA_KEY

SAMPLING_KEYS = ("group_size", "temperature", "top_p", "top_k", "max_new_tokens", "chat_template")


def upgraded(meta: dict[str, str], vocab_size: int | None) -> dict[str, str]:
    old = json.loads(meta["config"])
    if not isinstance(old.get("task"), str):
        raise SystemExit("the log's config is not the early flat shape (its task is not a name); nothing to upgrade")
    groups = int(old.get("groups", 1))
    settings = config_from_dict({
        "seed": int(old.get("seed", 0)), "steps": 0, "model": {"name": meta.get("model", "")},
        "task": {"name": old["task"], "options": old.get("task_options") or {}, "train_size": groups,
                 "val_size": groups},
        # an early sample recorded every sampling key it used; 128 was its default completion length
        "sampling": {"max_new_tokens": 128, "prompts_per_step": 8, **{k: old[k] for k in SAMPLING_KEYS if k in old}},
    })
    identity = get_task_from(settings.task, settings.seed).identity()
    recorded = config_to_dict(settings)
    recorded["task"]["options"] = dict(identity.options)
    new = {k: v for k, v in meta.items() if k != "config"}
    new["config"] = json.dumps(recorded)
    new[METADATA_KEY] = identity.to_json()
    new["prm_probe.sample"] = json.dumps({"split": old.get("split", "validation"), "groups": groups})
    if vocab_size is not None:
        new["vocab_size"] = str(vocab_size)
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--vocab-size", type=int, default=49152, help="the sampler's vocabulary (SmolLM2: 49152)")
    args = parser.parse_args()
    before = read_rollouts(args.log)
    meta = upgraded(read_metadata(args.log), args.vocab_size)
    table = before.replace_schema_metadata(None)
    write_rollouts(table, args.log, metadata=meta)
    after = read_rollouts(args.log)
    assert after.replace_schema_metadata(None).equals(table), "the rows changed"
    print(f"upgraded {args.log}: {pq.read_metadata(args.log).num_rows} rows unchanged; config is now "
          f"{json.loads(read_metadata(args.log)['config'])['task']}")


if __name__ == "__main__":
    main()
