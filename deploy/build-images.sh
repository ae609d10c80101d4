#!/usr/bin/env bash
# Builds the recsys stage images with buildah, without a Docker daemon.
#
#   deploy/build-images.sh [image ...]        images: candidate-generation retrieval ranking orchestrator retrain
#                                             (default: all of them)
#
# Environment:
#   TAG=dev                 image tag (recsys/<stage>:<TAG>; GPU variants <TAG>-gpu)
#   REGISTRY=localhost      image name prefix (<REGISTRY>/recsys/<stage>:<TAG>); PUSH=1 pushes there
#   BASE=debootstrap        base images: `debootstrap` makes them here from Debian's mirror (trixie
#                           minbase; the Containerfiles install Node.js from Debian's nodejs package at
#                           the exact NODE_DEB_VERSION they name, so the image's Node.js never depends
#                           on this machine's); `pull` uses the Containerfiles' defaults
#                           (docker.io/library/debian:trixie-slim; pin its digest where you build)
#   GPU=0                   1: also build retrain:<TAG>-gpu (the training job's image) with
#                           TF_BACKEND=node-gpu; needs GPU_NODE_IMAGE, a Debian trixie image with the CUDA
#                           11.8 + cuDNN 8 runtime libraries (the runtime stage installs Debian's nodejs
#                           package on it, as on every base; NVIDIA publishes no trixie CUDA image, so it is
#                           made where you build), and network access to libtensorflow's download site
#                           (storage.googleapis.com) during the build, which this project's build machines
#                           do not have: build it elsewhere. The serving stages have no GPU variant.
#   CONTEXT=head            build context: `head` = the committed tree (git archive HEAD, so work in
#                           progress in the working tree never lands in an image); `worktree` = the
#                           working tree as it is
#   MIRROR=http://deb.debian.org/debian   Debian mirror for debootstrap; for a reproducible package
#                           set name a dated archive, e.g. http://snapshot.debian.org/archive/debian/20261201T000000Z
#                           (not reachable from this project's machines, hence not the default)
#   SECURITY_MIRROR=http://security.debian.org/debian-security   trixie-security, which the bases are
#                           upgraded from (and the Containerfiles' apt-get installs see); with a dated
#                           MIRROR name the same date's http://snapshot.debian.org/archive/debian-security/<date>;
#                           empty: none (the images then miss the security fixes since the point release)
#   STORAGE_DRIVER          buildah's storage driver; unset = buildah's own choice (overlay where the
#                           kernel has it, as on a VM or a host); vfs works inside an unprivileged
#                           container too, but copies every layer in full (several times the disk)
#   BUILDAH_ISOLATION=chroot  RUN steps in a chroot: no user namespaces or systemd needed
#   HOST_CA=auto            auto: when /usr/local/share/ca-certificates holds certificates (a TLS-
#                           inspecting proxy between this machine and the npm registry), the
#                           debootstrapped BUILD image trusts them too (npm uses the system bundle);
#                           the runtime image never gets them. 0: never.
#
# Stages whose package is not in the workspace yet are skipped with a message. Not run by CI (slow:
# every image compiles the workspace); what it built and measured: docs/operations.md, "Build the images".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${TAG:-dev}
REGISTRY=${REGISTRY:-localhost}
BASE=${BASE:-debootstrap}
GPU=${GPU:-0}
CONTEXT=${CONTEXT:-head}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR-http://security.debian.org/debian-security}
if [ -n "${STORAGE_DRIVER:-}" ]; then export STORAGE_DRIVER; fi
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
ALL_STAGES=(candidate-generation retrieval ranking orchestrator)
if [ "$#" -gt 0 ]; then STAGES=("$@"); else STAGES=("${ALL_STAGES[@]}"); fi
# The training job's image, when its Containerfile is in the tree (the live-training work adds it).
if [ "$#" -eq 0 ] && [ -f "$ROOT/deploy/containers/retrain.Containerfile" ]; then STAGES+=(retrain); fi

die() { echo "build-images: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah not found: apt-get install -y buildah"

package_dir() {
  case "$1" in
    candidate-generation) echo candidate-gen-service ;;
    retrain) echo cli ;;
    retrieval) echo retrieval-service ;;
    ranking) echo ranking-service ;;
    orchestrator) echo orchestrator ;;
    *) die "unknown stage '$1' (one of: ${ALL_STAGES[*]} retrain)" ;;
  esac
}

image_exists() { buildah images --quiet "$1" >/dev/null 2>&1; }

# make_base <name>: localhost/recsys/debian-<name>:trixie-<UTC day it was made>, a Debian trixie
# minbase root filesystem (ca-certificates only: the Containerfiles install Node.js and, for
# `build`, the toolchain from Debian themselves), brought up to date from trixie-security and
# trixie-updates, slimmed like Debian's own -slim images (no documentation but the copyright files,
# no man pages, no translations: a dpkg path-exclude keeps later installs out of them too). Made
# once a day (REBUILD_BASE=1 makes it again). The build base also trusts this machine's local CAs
# when HOST_CA allows (see above); the runtime base never does.
make_base() {
  local name=$1 release image rootfs ctr mnt
  release=$(curl -fsS "$MIRROR/dists/trixie/Release" | sed -n 's/^Date: //p' | date -u -f - +%Y-%m-%d 2>/dev/null || echo unknown)
  image="localhost/recsys/debian-$name:trixie-$(date -u +%Y%m%d)"
  if image_exists "$image" && [ "${REBUILD_BASE:-0}" != 1 ]; then echo "$image"; return; fi
  command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install -y debootstrap (or BASE=pull)"
  rootfs=$(mktemp -d /tmp/recsys-rootfs-XXXXXX)
  echo "build-images: debootstrap trixie ($name, mirror release of $release) into $rootfs" >&2
  debootstrap --variant=minbase --include=ca-certificates trixie "$rootfs" "$MIRROR" >&2
  if [ "$name" = build ] && [ "${HOST_CA:-auto}" = auto ] && compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    echo "build-images: the build image trusts this machine's local CAs: $(ls /usr/local/share/ca-certificates)" >&2
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >&2
  fi
  # What Debian's -slim images leave out (debuerreotype's slimify list), now and for later installs.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/recsys-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
SLIM
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs/usr/share/groff/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/linda/"* \
    "$rootfs/usr/share/lintian/overrides/"* "$rootfs/usr/share/locale/"* "$rootfs/usr/share/man/"*
  {
    echo "deb $MIRROR trixie main"
    echo "deb $MIRROR trixie-updates main"
    if [ -n "$SECURITY_MIRROR" ]; then echo "deb $SECURITY_MIRROR trixie-security main"; fi
  } >"$rootfs/etc/apt/sources.list"
  chroot "$rootfs" apt-get update >&2
  DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get upgrade -y >&2
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs/var/lib/apt/lists/"*
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  if [ "$name" = build ]; then buildah config --env npm_config_cafile=/etc/ssl/certs/ca-certificates.crt "$ctr"; fi
  buildah commit --quiet "$ctr" "$image" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$rootfs"
  echo "$image"
}

BUILD_ARGS=()
if [ "$BASE" = debootstrap ]; then
  BUILD_IMAGE=$(make_base build)
  NODE_IMAGE=$(make_base runtime)
  BUILD_ARGS+=(--build-arg "BUILD_IMAGE=$BUILD_IMAGE" --build-arg "NODE_IMAGE=$NODE_IMAGE")
elif [ "$BASE" != pull ]; then
  die "BASE must be debootstrap or pull, not '$BASE'"
fi

case "$CONTEXT" in
  head)
    CONTEXT_DIR=$(mktemp -d /tmp/recsys-context-XXXXXX)
    trap 'rm -rf "$CONTEXT_DIR"' EXIT
    git -C "$ROOT" archive HEAD | tar -x -C "$CONTEXT_DIR"
    REVISION=$(git -C "$ROOT" rev-parse HEAD)
    echo "build-images: context = commit ${REVISION:0:7}" ;;
  worktree)
    CONTEXT_DIR=$ROOT
    REVISION="$(git -C "$ROOT" rev-parse HEAD)+worktree" ;;
  *) die "CONTEXT must be head or worktree, not '$CONTEXT'" ;;
esac

build() { # build <stage> <tag> [extra buildah args...]
  local stage=$1 tag=$2
  shift 2
  local image="$REGISTRY/recsys/$stage:$tag" started=$SECONDS
  echo "build-images: building $image"
  # OCI labels: which commit and tag the image is (no creation time: the same tree gives the same image).
  buildah build --layers --ignorefile "$CONTEXT_DIR/deploy/containers/containerignore" \
    --label "org.opencontainers.image.title=recsys/$stage" --label "org.opencontainers.image.version=$tag" \
    --label "org.opencontainers.image.revision=$REVISION" --label "org.opencontainers.image.licenses=Apache-2.0" \
    -f "$CONTEXT_DIR/deploy/containers/$stage.Containerfile" "${BUILD_ARGS[@]}" "$@" -t "$image" "$CONTEXT_DIR"
  echo "build-images: built $image in $((SECONDS - started)) s"
  if [ "${PUSH:-0}" = 1 ]; then buildah push "$image"; fi
}

for stage in "${STAGES[@]}"; do
  dir=$(package_dir "$stage")
  if [ ! -f "$CONTEXT_DIR/packages/$dir/package.json" ]; then
    echo "build-images: skipping $stage: packages/$dir is not in the build context ($CONTEXT) yet"
    continue
  fi
  build "$stage" "$TAG"
  if [ "$GPU" = 1 ] && [ "$stage" = retrain ]; then
    [ -n "${GPU_NODE_IMAGE:-}" ] || die "GPU=1 needs GPU_NODE_IMAGE (Debian trixie with the CUDA 11.8 + cuDNN 8 runtime libraries)"
    build "$stage" "$TAG-gpu" --build-arg TF_BACKEND=node-gpu --build-arg "NODE_IMAGE=$GPU_NODE_IMAGE"
  fi
done
