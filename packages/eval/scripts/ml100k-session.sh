#!/usr/bin/env bash
# The session source's figures of docs/sequence-models.md ("Training the ranker behind the
# session source"): per seed and holdout (test: scored on the test items; val: trained without
# the validation events, scored on them), a candidate generator, a SASRec session model
# (train-session --epochs $EPOCHS, default 12), the ranker trained without the session source
# (--no-session, DIR/ranker-nosession/) and the one trained behind it (DIR/ranker/), then
# `recsys evaluate --protocols lastout --json`. Quality runs, one at a time, under nice:
#   nice -n 19 packages/eval/scripts/ml100k-session.sh OUT_DIR "test val" 1 2 3
#   node packages/eval/scripts/summarize-session.mjs OUT_DIR/session-test-s*.json
set -euo pipefail
OUT=$1; shift
HOLDOUTS=$1; shift
D=${DATASET:-ml100k:../shared/data/ml-100k}
EPOCHS=${EPOCHS:-12}
CLI="node packages/cli/dist/main.js"
mkdir -p "$OUT/models" "$OUT/logs"
for seed in "$@"; do
  for h in $HOLDOUTS; do
    M=$OUT/models/$h-s$seed
    echo "== $(date -u +%T) holdout $h seed $seed"
    $CLI train --dataset "$D" --out "$M" --seed "$seed" --holdout "$h" 2>"$OUT/logs/train-$h-s$seed.log" | tail -1
    $CLI train-session --dataset "$D" --model "$M" --epochs "$EPOCHS" --seed "$seed" 2>"$OUT/logs/session-$h-s$seed.log" | tail -1
    $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" --no-session 2>"$OUT/logs/ranker-nosession-$h-s$seed.log" | tail -1
    $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" 2>"$OUT/logs/ranker-$h-s$seed.log" | tail -1
    $CLI evaluate --dataset "$D" --model "$M" --protocols lastout --split "$h" --json \
      >"$OUT/session-$h-s$seed.json" 2>"$OUT/logs/evaluate-$h-s$seed.log"
  done
done
echo "== $(date -u +%T) done"
