#!/usr/bin/env bash
# Publishes a model bundle to the model store that the model-sync init container and sidecar
# (k8s/components/model-sync) fetch from: an archive, its SHA-256, then the pointer, in that order
# (a pointer never names an archive that is not there yet).
#
#   deploy/models/publish-bundle.sh <bundle-dir> <store> [<index-dir>]
#
#   <bundle-dir>  a `recsys train` bundle with its ranker (`recsys train-ranker` into <bundle-dir>/ranker)
#   <store>       a directory (mounted bucket, or a test) or an http(s) URL of the store's directory:
#                 files are uploaded with HTTP PUT (S3/GCS presigned or MinIO/WebDAV endpoints),
#                 with the header in MODEL_STORE_AUTH_HEADER ("Name: value") when set
#   <index-dir>   optional: a retrieval INDEX_DIR holding <modelVersion>/shard-<i>-of-<n>/ indexes
#                 of this bundle (e.g. the index/ directory `recsys start` or the serving benchmark
#                 built), added to the archive as bundle/indexes/shard-<i>-of-<n>/, where a bundle
#                 published by `recsys retrain` already has them. Each retrieval pod keeps its own
#                 shard's and loads it instead of building it (minutes per shard at 1M items).
#                 Upsert journals are never published.
#
# Layout written: <store>/bundles/<modelVersion>.tar.gz and <store>/current.json
#   {"version": "<modelVersion>", "bundle": "bundles/<modelVersion>.tar.gz", "sha256": "<hex>"}
# Rolling back = publishing the previous bundle again (its archive is already there).
set -euo pipefail
die() { echo "publish-bundle: $*" >&2; exit 1; }
[ "$#" -ge 2 ] && [ "$#" -le 3 ] || die "usage: publish-bundle.sh <bundle-dir> <store> [<index-dir>]"
bundle=$(cd "$1" && pwd) || die "no bundle directory $1"
store=$2
index_dir=${3:-}
[ -f "$bundle/manifest.json" ] || die "$bundle/manifest.json not found: not a recsys bundle"
[ -d "$bundle/ranker" ] || die "$bundle/ranker not found: train the ranker into the bundle first (the ranking stage refuses a bundle without one)"
version=$(node -e 'const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(String(m.modelVersion ?? ""))' "$bundle/manifest.json")
[[ "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "manifest modelVersion '$version' is not usable as a version"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# bundle/ = the bundle's files (symlinks followed by tar -h), plus indexes/ from <index-dir>.
mkdir "$work/bundle"
for entry in "$bundle"/* "$bundle"/.[!.]*; do [ -e "$entry" ] && ln -s "$entry" "$work/bundle/$(basename "$entry")"; done
if [ -n "$index_dir" ]; then
  shards=("$index_dir/$version"/shard-*-of-*/)
  [ -d "${shards[0]}" ] || die "no $index_dir/$version/shard-<i>-of-<n>/ index directories"
  [ -e "$bundle/indexes" ] && die "$bundle already has indexes/: publish it without <index-dir>"
  mkdir "$work/bundle/indexes"
  for shard in "${shards[@]}"; do ln -s "${shard%/}" "$work/bundle/indexes/$(basename "$shard")"; done
fi
if [ -d "$work/bundle/indexes" ]; then echo "publish-bundle: with prebuilt indexes: $(ls "$work/bundle/indexes" | tr '\n' ' ')"; fi
archive="$work/$version.tar.gz"
tar -czhf "$archive" -C "$work" bundle
sha256=$(sha256sum "$archive" | cut -d' ' -f1)
printf '{"version": "%s", "bundle": "bundles/%s.tar.gz", "sha256": "%s"}\n' "$version" "$version" "$sha256" >"$work/current.json"

case "$store" in
  http://* | https://*)
    auth=()
    if [ -n "${MODEL_STORE_AUTH_HEADER:-}" ]; then auth=(-H "$MODEL_STORE_AUTH_HEADER"); fi
    curl -fsS "${auth[@]}" -T "$archive" "${store%/}/bundles/$version.tar.gz"
    curl -fsS "${auth[@]}" -H "Content-Type: application/json" -T "$work/current.json" "${store%/}/current.json" ;;
  *)
    mkdir -p "$store/bundles"
    cp "$archive" "$store/bundles/$version.tar.gz.tmp" && mv "$store/bundles/$version.tar.gz.tmp" "$store/bundles/$version.tar.gz"
    cp "$work/current.json" "$store/current.json.tmp" && mv "$store/current.json.tmp" "$store/current.json" ;;
esac
echo "publish-bundle: published $version ($(du -h "$archive" | cut -f1), sha256 $sha256) to $store"
