"""The log format and the measurements: nothing here imports torch, transformers, matplotlib or argparse.

``schema`` (columns and their checks), ``rollouts`` (reading and writing logs), ``validate``, ``files`` (atomic
writes, JSONL), ``trie`` (the vectorised process-set engine), ``group_trie`` (one group's trie), ``stats``
(overlap statistics), ``prm`` (implied step rewards and PRM-aware advantages), ``runs`` (the run-folder format),
``weightings`` (the loss weightings' names: GRPO's ``uniform``, λ-GRPO's ``process_set``).
Imports only the standard library, numpy, pyarrow, pandas and itself.
"""
