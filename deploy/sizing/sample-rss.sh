#!/usr/bin/env bash
# Samples the resident memory of the recsys stage processes on this machine (the processes
# `recsys start` / `npm run bench -- serve` launch: node .../packages/<service>/dist/main.js) every
# INTERVAL seconds until killed, one line per process per sample:
#   <unix time> <stage> <pid> <VmRSS KiB> <VmHWM KiB>
# VmHWM is the kernel's own peak of VmRSS for the process, so a short peak between two samples is
# still seen. Used to size the Kubernetes requests/limits (docs/operations.md, "Sizing"):
#   deploy/sizing/sample-rss.sh > /tmp/rss.tsv & npm run bench -- serve --rollout; kill %1
#   deploy/sizing/summarize-rss.sh /tmp/rss.tsv [from-unix-time [to-unix-time]]
# ROOT (default: this repository) keeps only processes started from that checkout: on a machine
# shared with other checkouts their stages would be counted too.
set -euo pipefail
INTERVAL=${INTERVAL:-0.5}
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
stage_of() {
  case "$1" in
    *packages/candidate-gen-service/dist/main.js*) echo candidate_generation ;;
    *packages/retrieval-service/dist/main.js*) echo retrieval ;;
    *packages/ranking-service/dist/main.js*) echo ranking ;;
    *packages/orchestrator/dist/main.js*) echo orchestrator ;;
    *) return 1 ;;
  esac
}
while :; do
  now=$(date +%s.%N)
  for status in /proc/[0-9]*/status; do
    pid=${status#/proc/}; pid=${pid%/status}
    cmdline=$(tr "\0" " " 2>/dev/null <"/proc/$pid/cmdline") || continue
    case "$cmdline" in *"$ROOT/packages/"*) ;; *) continue ;; esac
    stage=$(stage_of "$cmdline") || continue
    read -r rss hwm < <(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' "$status" 2>/dev/null) || continue
    [ -n "$rss" ] && echo "$now $stage $pid $rss $hwm"
  done
  sleep "$INTERVAL"
done
