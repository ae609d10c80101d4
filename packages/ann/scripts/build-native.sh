#!/usr/bin/env bash
# Rebuilds hnswlib-node for this host's SIMD. npm builds it with node-gyp's default flags, which
# target baseline x86-64: hnswlib then compiles only its SSE distance kernels (hnswlib.h defines
# USE_AVX / USE_AVX512 only under __AVX__ / __AVX512F__). gyp's Makefile appends $CXXFLAGS, so
# CXXFLAGS="-O3 -march=native" (the default here) builds the AVX2 / AVX-512 kernels.
#
# The result runs only on CPUs with the same instruction sets: build it on the machine (or the
# image's target CPU family) that serves, not on a build host of another kind. `npm ci`
# reinstalls the portable build. Usage, from the repository root:
#   bash packages/ann/scripts/build-native.sh            # -O3 -march=native
#   CXXFLAGS="-O3 -mavx2 -mfma" bash packages/ann/scripts/build-native.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
pkg="$(cd "$root" && node -p "require('path').dirname(require.resolve('hnswlib-node/package.json'))")"
gyp="$(dirname "$(dirname "$(realpath "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || { echo "build-native: node-gyp not found next to npm ($gyp)" >&2; exit 1; }
nodedir="$(npm config get nodedir)"
args=(rebuild --loglevel=warn)
# Offline machines: use the installed headers instead of downloading them.
if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ -f "$nodedir/include/node/node_api.h" ]; then args+=("--nodedir=$nodedir"); fi
export CXXFLAGS="${CXXFLAGS:--O3 -march=native}"
echo "build-native: rebuilding $pkg with CXXFLAGS=$CXXFLAGS"
cd "$pkg" && node "$gyp" "${args[@]}" >/dev/null
node -e "const h = require('hnswlib-node'); const i = new h.HierarchicalNSW('ip', 4); i.initIndex(2); i.addPoint([1,0,0,0], 0); i.addPoint([0,1,0,0], 1); if (i.searchKnn([1,0,0,0], 1).neighbors[0] !== 0) process.exit(1); console.log('build-native: hnswlib-node rebuilt and answering')" 
