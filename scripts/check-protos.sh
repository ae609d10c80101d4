#!/usr/bin/env bash
# Contract checks (`npm run proto:check`):
#   1. buf lint (STANDARD rules, see buf.yaml);
#   2. buf breaking (FILE rules) against the previous commit of the current branch, when there is
#      one and it already has .proto files under proto/ (otherwise says why it is skipped);
#   3. the committed generated code in packages/gen/src/gen is exactly what `buf generate`
#      produces from the current protos (regenerated into a temp dir; the tree is not touched).
# Uses the buf binary of the root devDependency @bufbuild/buf: no network needed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF=node_modules/.bin/buf
if [[ ! -x "$BUF" ]]; then
  echo "check-protos: $BUF not found; run 'npm ci' first" >&2
  exit 1
fi

echo "== buf lint"
"$BUF" lint
echo "ok"

echo "== buf breaking (FILE) against HEAD~1"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "skipped: not a git checkout"
elif ! git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null; then
  echo "skipped: no previous commit on this branch (first commit, or a shallow clone: fetch with depth >= 2)"
elif [[ -z "$(git ls-tree -r --name-only 'HEAD~1' -- proto | grep '\.proto$' || true)" ]]; then
  echo "skipped: the previous commit has no .proto files under proto/"
else
  "$BUF" breaking proto --against '.git#ref=HEAD~1,subdir=proto'
  echo "ok"
fi

echo "== generated code is up to date"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$BUF" generate --output "$tmp"
if ! diff -r "$tmp/packages/gen/src/gen" packages/gen/src/gen; then
  echo "check-protos: packages/gen/src/gen is stale; run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "ok"
