#!/usr/bin/env bash
# Validation table of docs/evaluation.md: the ranker's defaults (8 epochs, 1,000 examples per
# user, missed positives dropped) against other values, one at a time, on the validation
# split (protocol lastout). Per seed: a candidate generator trained with --holdout val, then one
# ranker per setting behind it, each evaluated with --split val. Run from the repository root:
#   flock /work/heavy.lock packages/eval/scripts/ml100k-validate-ranker.sh OUT_DIR 1 2 3
set -euo pipefail
OUT=$1; shift
D=${DATASET:-ml100k:../shared/data/ml-100k}
CLI="node packages/cli/dist/main.js"
# No ml-100k user has more than 737 events, so 1,000 examples per user is every example; larger
# caps change nothing there and are not run.
SETTINGS=${SETTINGS:-"default:|epochs4:--epochs 4|epochs12:--epochs 12|examples100:--max-examples 100|keep:--missed keep"}
mkdir -p "$OUT/models" "$OUT/logs"
for seed in "$@"; do
  B=$OUT/models/val-s$seed
  if [ ! -f "$B/manifest.json" ]; then
    echo "== $(date -u +%T) train candidate generator (holdout val) seed $seed"
    $CLI train --dataset "$D" --out "$B" --seed "$seed" --holdout val 2>"$OUT/logs/train-val-s$seed.log" | tail -1
  fi
  IFS='|' read -ra items <<<"$SETTINGS"
  for item in "${items[@]}"; do
    name=${item%%:*}; opts=${item#*:}
    J=$OUT/val-$name-s$seed.json
    [ -s "$J" ] && continue
    M=$OUT/models/val-$name-s$seed
    rm -rf "$M"; mkdir -p "$M"; cp -al "$B"/* "$M"/
    echo "== $(date -u +%T) ranker $name seed $seed"
    # shellcheck disable=SC2086
    $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" $opts 2>"$OUT/logs/ranker-$name-s$seed.log" | tail -1
    $CLI evaluate --dataset "$D" --model "$M" --split val --protocols lastout --json >"$J" 2>"$OUT/logs/evaluate-$name-s$seed.log"
  done
done
echo "== $(date -u +%T) done"
