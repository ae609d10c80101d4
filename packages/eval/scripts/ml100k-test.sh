#!/usr/bin/env bash
# Test-split figures of docs/evaluation.md: per seed, a candidate generator, a ranker and the
# no-provenance ranker for each protocol (lastout, and lastout-shuffled with tie seed = seed),
# then `recsys evaluate --json` with both. Run from the repository root, under the heavy-job lock:
#   flock /work/heavy.lock packages/eval/scripts/ml100k-test.sh OUT_DIR 1 2 3
set -euo pipefail
OUT=$1; shift
D=${DATASET:-ml100k:../shared/data/ml-100k}
CLI="node packages/cli/dist/main.js"
mkdir -p "$OUT/models" "$OUT/logs"
for seed in "$@"; do
  for p in lastout lastout-shuffled; do
    M=$OUT/models/$p-s$seed
    if [ ! -f "$M/ranker-noprov/manifest.json" ]; then
      echo "== $(date -u +%T) train $p seed $seed"
      $CLI train --dataset "$D" --out "$M" --seed "$seed" --protocol $p --tie-seed "$seed" 2>"$OUT/logs/train-$p-s$seed.log" | tail -1
      $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" --protocol $p --tie-seed "$seed" 2>"$OUT/logs/ranker-$p-s$seed.log" | tail -1
      $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" --protocol $p --tie-seed "$seed" --no-provenance 2>"$OUT/logs/noprov-$p-s$seed.log" | tail -1
    fi
  done
  echo "== $(date -u +%T) evaluate seed $seed"
  $CLI evaluate --dataset "$D" --model "$OUT/models/lastout-s$seed" --shuffled-model "$OUT/models/lastout-shuffled-s$seed" \
    --tie-seed "$seed" --json >"$OUT/test-s$seed.json" 2>"$OUT/logs/evaluate-s$seed.log"
done
echo "== $(date -u +%T) done"
