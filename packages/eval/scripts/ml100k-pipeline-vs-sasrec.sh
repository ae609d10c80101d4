#!/usr/bin/env bash
# The pipeline with the session source against the PyTorch SASRec of the sequence bench, same
# seeds, same protocols (lastout and lastout-shuffled), same split (docs/sequence-models.md,
# "The pipeline against SASRec"). Usage, from the repository root after `npx tsc --build`:
#   packages/eval/scripts/ml100k-pipeline-vs-sasrec.sh OUT 1,2,3
#   node packages/eval/scripts/summarize-pipeline-vs-sasrec.mjs OUT
# Steps:
#  1. OUT/sequence.json: `bench sequence --models sasrec ... --json` for the seeds and both
#     protocols (the PyTorch SASRec and ours, epochs chosen on validation; per-user test ranks).
#     Skipped when OUT/sequence.json exists (reuse a sequence bench run of the same seeds).
#  2. Per protocol P and seed S, a bundle OUT/models/P-sS trained for the test holdout in P's
#     event order (`--protocol P --tie-seed $TIE_SEED`; the bench's --shuffle-seed is the same
#     permutation, default 1): `recsys train` (attention pooling, the default tower, named
#     explicitly), `train-session` (SASRec, batch 32, lr 0.002, seed S, for the epoch count the
#     bench's validation chose for our SASRec at that seed and protocol: its row sasrec-tfjs,
#     best_epoch; SESSION_EPOCHS=N overrides), `train-ranker --no-session` (the `pipeline` row),
#     `train-ranker` (behind the session source), `evaluate --protocols P --split test --json`
#     into OUT/pipeline-P-sS.json.
# Environment: DATASET (ml100k:$RECSYS_ML100K_DIR, the bench's data, default ../shared/data/ml-100k), PROTOCOLS (lastout,lastout-shuffled),
# TIE_SEED (1), BENCH_ARGS (the bench's training settings, default below), TRAIN_ARGS (extra
# `recsys train` options), RANKER_ARGS (extra `train-ranker` options), SESSION_EPOCHS.
# Per-step wall-clock seconds go to OUT/timings.tsv. Quality run: start it under nice, or under
# `flock /work/heavy.lock` when the bench's examples/s figures are to be quoted.
set -euo pipefail
OUT=$1
SEEDS=$2
D=${DATASET:-ml100k:${RECSYS_ML100K_DIR:-../shared/data/ml-100k}}
PROTOCOLS=${PROTOCOLS:-lastout,lastout-shuffled}
TIE_SEED=${TIE_SEED:-1}
BENCH_ARGS=${BENCH_ARGS:---max-epochs 32 --eval-every 4 --patience 2 --batch 32 --lr 0.002}
TRAIN_ARGS=${TRAIN_ARGS:-}
RANKER_ARGS=${RANKER_ARGS:-}
CLI="node packages/cli/dist/main.js"
mkdir -p "$OUT/models" "$OUT/logs"
TIMINGS=$OUT/timings.tsv
[ -f "$TIMINGS" ] || printf 'step\tprotocol\tseed\tseconds\n' >"$TIMINGS"

# Seconds since $1 (a `date +%s.%N` reading).
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME PROTOCOL SEED LOG -- command...: runs the command (stdout's last line echoed, stderr to
# LOG), appends its wall-clock seconds to OUT/timings.tsv.
step() {
  local name=$1 protocol=$2 seed=$3 log=$4
  shift 5
  local t0
  t0=$(date +%s.%N)
  "$@" 2>"$log" | tail -1
  printf '%s\t%s\t%s\t%s\n' "$name" "$protocol" "$seed" "$(elapsed "$t0")" >>"$TIMINGS"
}

if [ -f "$OUT/sequence.json" ]; then
  echo "== $(date -u +%T) reusing $OUT/sequence.json"
else
  echo "== $(date -u +%T) sequence bench: seeds $SEEDS, protocols lastout,lastout-shuffled"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
  node packages/bench/dist/main.js sequence --seeds "$SEEDS" --protocols lastout,lastout-shuffled \
    --shuffle-seed "$TIE_SEED" --models sasrec $BENCH_ARGS --json \
    >"$OUT/sequence.json.partial" 2>"$OUT/logs/sequence-bench.log"
  mv "$OUT/sequence.json.partial" "$OUT/sequence.json"
  printf 'bench-sequence\tboth\t%s\t%s\n' "$SEEDS" "$(elapsed "$t0")" >>"$TIMINGS"
fi

# The epoch count the bench's validation chose for our SASRec (row sasrec-tfjs) at seed $1, protocol $2.
bench_epochs() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const row = r.rows.find((x) => x.model === "sasrec-tfjs" && x.protocol === process.argv[2] && x.seed === Number(process.argv[3]));
    if (row === undefined) { console.error(`no sasrec-tfjs row for ${process.argv[2]} seed ${process.argv[3]} in ${process.argv[1]}`); process.exit(1); }
    console.log(Math.max(1, row.best_epoch));
  ' "$OUT/sequence.json" "$2" "$1"
}

for seed in ${SEEDS//,/ }; do
  for p in ${PROTOCOLS//,/ }; do
    M=$OUT/models/$p-s$seed
    PF=(--protocol "$p" --tie-seed "$TIE_SEED")
    epochs=${SESSION_EPOCHS:-$(bench_epochs "$seed" "$p")}
    echo "== $(date -u +%T) protocol $p seed $seed (session epochs $epochs)"
    # shellcheck disable=SC2086 # TRAIN_ARGS / RANKER_ARGS are lists of options
    step train "$p" "$seed" "$OUT/logs/train-$p-s$seed.log" -- \
      $CLI train --dataset "$D" --out "$M" --seed "$seed" --holdout test --history-pooling attention "${PF[@]}" $TRAIN_ARGS
    step "train-session-${epochs}ep" "$p" "$seed" "$OUT/logs/session-$p-s$seed.log" -- \
      $CLI train-session --dataset "$D" --model "$M" --encoder sasrec --epochs "$epochs" --batch 32 --lr 0.002 --seed "$seed" "${PF[@]}"
    # shellcheck disable=SC2086
    step train-ranker-nosession "$p" "$seed" "$OUT/logs/ranker-nosession-$p-s$seed.log" -- \
      $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" --no-session "${PF[@]}" $RANKER_ARGS
    # shellcheck disable=SC2086
    step train-ranker "$p" "$seed" "$OUT/logs/ranker-$p-s$seed.log" -- \
      $CLI train-ranker --dataset "$D" --model "$M" --seed "$seed" "${PF[@]}" $RANKER_ARGS
    t0=$(date +%s.%N)
    $CLI evaluate --dataset "$D" --model "$M" --shuffled-model "$M" --protocols "$p" --tie-seed "$TIE_SEED" \
      --split test --json >"$OUT/pipeline-$p-s$seed.json" 2>"$OUT/logs/evaluate-$p-s$seed.log"
    printf 'evaluate\t%s\t%s\t%s\n' "$p" "$seed" "$(elapsed "$t0")" >>"$TIMINGS"
  done
done
echo "== $(date -u +%T) done; node packages/eval/scripts/summarize-pipeline-vs-sasrec.mjs $OUT"
