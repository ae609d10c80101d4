#!/bin/bash
# Sampled against hierarchical softmax (train config output) on ml-100k, protocol lastout:
#   packages/candidate-gen/scripts/ml100k-output.sh OUT_DIR SPLIT [SEED...]
# SPLIT "val": trains with --holdout val and evaluates --split val (choose on this);
# SPLIT "test": trains with --holdout test and evaluates --split test. Seeds default to 1 2 3.
# Everything else is the default configuration. Quality runs: low priority, no exclusive lock. Then:
#   node packages/candidate-gen/scripts/output-compare.mjs OUT_DIR SPLIT
set -euo pipefail
OUT=$1; SPLIT=$2; shift 2
SEEDS=${*:-1 2 3}
DATA=${ML100K:-../shared/data/ml-100k}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for output in sampled hierarchical; do
    d="$OUT/$output-$SPLIT-s$seed"
    nice -n 19 node packages/cli/dist/main.js train --dataset "ml100k:$DATA" --out "$d" --holdout "$SPLIT" --seed "$seed" --output "$output" </dev/null >"$d.train.log" 2>&1
    nice -n 19 node packages/cli/dist/main.js evaluate --dataset "ml100k:$DATA" --model "$d" --split "$SPLIT" --protocols lastout --json </dev/null >"$d.eval.json" 2>"$d.eval.log"
  done
done
