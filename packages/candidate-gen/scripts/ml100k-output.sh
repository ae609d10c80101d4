#!/bin/bash
# Sampled against hierarchical softmax (train config output) on ml-100k, protocol lastout:
#   packages/candidate-gen/scripts/ml100k-output.sh OUT_DIR SPLIT [SEED...]
# SPLIT "val": trains with --holdout val and evaluates --split val (choose on this);
# SPLIT "test": trains with --holdout test and evaluates --split test. Seeds default to 1 2 3.
# Arms ($ARMS, default all three):
#   sampled          --output sampled (the default: 500 shared negatives, logQ correction)
#   hierarchical     --output hierarchical --self-normalization 0
#   hierarchical-sn  --output hierarchical --self-normalization $SN (default 0.1)
# Everything else is the default configuration. The tfjs step (RECSYS_BLAS=off; the native BLAS
# step computes the same numbers up to float rounding). Quality runs: low priority, no
# exclusive lock. Then:
#   node packages/candidate-gen/scripts/output-compare.mjs OUT_DIR SPLIT [BASE OTHER]
set -euo pipefail
OUT=$1; SPLIT=$2; shift 2
SEEDS=${*:-1 2 3}
ARMS=${ARMS:-sampled hierarchical hierarchical-sn}
SN=${SN:-0.1}
DATA=${ML100K:-../shared/data/ml-100k}
export RECSYS_BLAS=off
mkdir -p "$OUT"
for seed in $SEEDS; do
  for arm in $ARMS; do
    case $arm in
      sampled) flags="--output sampled" ;;
      hierarchical) flags="--output hierarchical --self-normalization 0" ;;
      hierarchical-sn) flags="--output hierarchical --self-normalization $SN" ;;
      *) echo "unknown arm $arm" >&2; exit 2 ;;
    esac
    d="$OUT/$arm-$SPLIT-s$seed"
    # shellcheck disable=SC2086
    nice -n 19 node packages/cli/dist/main.js train --dataset "ml100k:$DATA" --out "$d" --holdout "$SPLIT" --seed "$seed" $flags </dev/null >"$d.train.log" 2>&1
    nice -n 19 node packages/cli/dist/main.js evaluate --dataset "ml100k:$DATA" --model "$d" --split "$SPLIT" --protocols lastout --json </dev/null >"$d.eval.json" 2>"$d.eval.log"
  done
done
