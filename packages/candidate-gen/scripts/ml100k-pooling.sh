#!/bin/bash
# Mean against attention pooling of the watch history on ml-100k, protocol lastout:
#   packages/candidate-gen/scripts/ml100k-pooling.sh OUT_DIR SPLIT [SEED...]
# SPLIT "val": trains with --holdout val and evaluates --split val (choose on this);
# SPLIT "test": trains with --holdout test and evaluates --split test. Seeds default to 1 2 3.
# Quality runs: low priority, no exclusive lock. Then:
#   node packages/candidate-gen/scripts/pooling-compare.mjs OUT_DIR SPLIT
set -euo pipefail
OUT=$1; SPLIT=$2; shift 2
SEEDS=${*:-1 2 3}
DATA=${ML100K:-../shared/data/ml-100k}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for pooling in mean attention; do
    d="$OUT/$pooling-$SPLIT-s$seed"
    nice -n 19 node packages/cli/dist/main.js train --dataset "ml100k:$DATA" --out "$d" --holdout "$SPLIT" --seed "$seed" --history-pooling "$pooling" </dev/null >"$d.train.log" 2>&1
    nice -n 19 node packages/cli/dist/main.js evaluate --dataset "ml100k:$DATA" --model "$d" --split "$SPLIT" --json </dev/null >"$d.eval.json" 2>"$d.eval.log"
  done
done
