#!/usr/bin/env bash
# GRPO vs λ-GRPO on SmolLM2-135M-Instruct (analysis/experiments/smollm2_addition.toml): 3 seeds per algorithm,
# two runs at a time with one CPU thread each. Resumable: finished runs are skipped, interrupted ones resumed
# from their last checkpoint (every 10 steps). Then the comparison into figures/smollm2_addition/.
#   bash analysis/experiments/smollm2_addition.sh [RUNS_DIR]      (default data/runs/smol-add)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-data/runs/smol-add}"
CONFIG=analysis/experiments/smollm2_addition.toml
STEPS=$(sed -n 's/^steps = //p' "$CONFIG")
mkdir -p "$RUNS"
one() {  # ARM SEED
  local dir="$RUNS/$1_s$2" weighting=uniform
  [ "$1" = lambda ] && weighting=process_set
  if [ -f "$dir/metrics.jsonl" ] && [ "$(grep -c . "$dir/metrics.jsonl")" -ge "$STEPS" ]; then return 0; fi
  if [ -d "$dir/checkpoints" ] && ls "$dir"/checkpoints/step-* > /dev/null 2>&1; then
    OMP_NUM_THREADS=1 prm-probe train --resume "$dir" --steps "$STEPS" -q
  else
    rm -rf "$dir"
    OMP_NUM_THREADS=1 prm-probe train --config "$CONFIG" --weighting "$weighting" --seed "$2" --out "$dir" -q
  fi
}
export -f one; export RUNS CONFIG STEPS
printf '%s\n' "grpo 0" "lambda 0" "grpo 1" "lambda 1" "grpo 2" "lambda 2" | xargs -P 2 -L 1 bash -c 'one $0 $1'
prm-probe compare "$RUNS"/grpo_s* "$RUNS"/lambda_s* --metric val_accuracy --out figures/smollm2_addition
