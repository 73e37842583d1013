#!/usr/bin/env bash
# GRPO vs λ-GRPO on SmolLM2-135M-Instruct (analysis/experiments/smollm2_addition.toml): 3 seeds per algorithm,
# two runs at a time with one CPU thread each (about 19 s a step each on a quiet 2-core machine). Resumable:
# finished runs are skipped, interrupted ones resumed from their last checkpoint (every 10 steps). Each finished
# run's config.json, metrics.jsonl and validation.jsonl are kept (gzipped) in data/experiments/smollm2-addition/,
# and the comparison is written into figures/smollm2_addition/.
#   bash analysis/experiments/smollm2_addition.sh [RUNS_DIR]      train (default data/runs/smol-add), then compare
#   bash analysis/experiments/smollm2_addition.sh --from-data     only the comparison, from the committed files
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEP=data/experiments/smollm2-addition/runs
compare() {  # the committed copies (compare reads their gzipped metrics), so runs.csv names stable paths
  prm-probe compare "$KEEP"/grpo_s* "$KEEP"/lambda_s* --metric val_accuracy --out figures/smollm2_addition
}
if [ "${1:-}" = --from-data ]; then
  compare
  exit 0
fi
RUNS="${1:-data/runs/smol-add}"
CONFIG=analysis/experiments/smollm2_addition.toml
STEPS=$(sed -n 's/^steps = //p' "$CONFIG")
mkdir -p "$RUNS" "$KEEP"
one() {  # ARM SEED
  local dir="$RUNS/$1_s$2" weighting=uniform
  [ "$1" = lambda ] && weighting=process_set
  if ! { [ -f "$dir/metrics.jsonl" ] && [ "$(grep -c . "$dir/metrics.jsonl")" -ge "$STEPS" ]; }; then
    if [ -d "$dir/checkpoints" ] && ls "$dir"/checkpoints/step-* > /dev/null 2>&1; then
      OMP_NUM_THREADS=1 prm-probe train --resume "$dir" --steps "$STEPS" -q
    else
      rm -rf "$dir"
      OMP_NUM_THREADS=1 prm-probe train --config "$CONFIG" --weighting "$weighting" --seed "$2" --out "$dir" -q
    fi
  fi
  mkdir -p "$KEEP/$1_s$2"
  cp "$dir/config.json" "$KEEP/$1_s$2/"
  for f in metrics validation; do gzip -nc "$dir/$f.jsonl" > "$KEEP/$1_s$2/$f.jsonl.gz"; done
}
export -f one; export RUNS CONFIG STEPS KEEP
printf '%s\n' "grpo 0" "lambda 0" "grpo 1" "lambda 1" "grpo 2" "lambda 2" | xargs -P 2 -L 1 bash -c 'one $0 $1'
compare
