#!/usr/bin/env bash
# Summarizes deploy/sizing/sample-rss.sh output: per stage process, the largest sampled VmRSS and
# the last VmHWM (peak over the process's life), in MiB, optionally within [from, to] (unix times).
#   deploy/sizing/summarize-rss.sh samples.tsv [from [to]]
set -euo pipefail
awk -v from="${2:-0}" -v to="${3:-9e18}" '
  $1 >= from && $1 <= to {
    key = $2 " pid " $3
    if ($4 > max[key]) max[key] = $4
    if (!(key in first)) first[key] = $4
    hwm[key] = $5; last[key] = $4
  }
  END {
    printf "%-34s %10s %10s %10s %10s\n", "process", "first MiB", "last MiB", "max MiB", "VmHWM MiB"
    for (k in max) printf "%-34s %10.0f %10.0f %10.0f %10.0f\n", k, first[k] / 1024, last[k] / 1024, max[k] / 1024, hwm[k] / 1024
  }' "$1" | sort
