#!/usr/bin/env bash
# docs/wide-and-deep.md: the default ranker (weighted-lr) against --model-kind wide-deep behind the
# same candidate generator, per seed, on one split (protocol lastout). Run from the repository root:
#   nice -n 19 packages/ranking/scripts/ml100k-wide-deep.sh OUT_DIR val 1 2 3
#   node packages/eval/scripts/summarize.mjs val lr OUT_DIR/val/val-*.json
# (summarize.mjs's "val" mode pairs files named val-<setting>-s<seed>.json on the same users; the
# test split writes OUT_DIR/test/val-<setting>-s<seed>.json so that the same command reads it.)
set -euo pipefail
OUT=$1; SPLIT=$2; shift 2
D=${DATASET:-ml100k:../shared/data/ml-100k}
CLI="node packages/cli/dist/main.js"
mkdir -p "$OUT/$SPLIT" "$OUT/logs"
for seed in "$@"; do
  B=$OUT/cg-$SPLIT-s$seed
  if [ ! -f "$B/manifest.json" ]; then
    echo "== $(date -u +%T) candidate generator (holdout $SPLIT) seed $seed"
    $CLI train --dataset "$D" --out "$B" --seed "$seed" --holdout "$SPLIT" </dev/null 2>"$OUT/logs/cg-$SPLIT-s$seed.log" | tail -1
  fi
  for kind in lr wd; do
    J=$OUT/$SPLIT/val-$kind-s$seed.json
    [ -s "$J" ] && continue
    M=$OUT/m-$SPLIT-$kind-s$seed
    rm -rf "$M"; mkdir -p "$M"; cp -al "$B"/* "$M"/
    opts=""; [ "$kind" = wd ] && opts="--model-kind wide-deep"
    echo "== $(date -u +%T) ranker $kind seed $seed"
    # shellcheck disable=SC2086
    $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" $opts </dev/null 2>"$OUT/logs/ranker-$SPLIT-$kind-s$seed.log" | tail -1
    $CLI evaluate --dataset "$D" --model "$M" --split "$SPLIT" --protocols lastout --json </dev/null >"$J.tmp" 2>"$OUT/logs/evaluate-$SPLIT-$kind-s$seed.log"
    mv "$J.tmp" "$J"
  done
done
echo "== $(date -u +%T) done"
