#!/usr/bin/env bash
# End-to-end test of the deployment on a throw-away Kubernetes cluster, or, where none can be
# created, every offline check of it.
#
#   scripts/cluster-test.sh            kind or k3d if installed (with a container runtime), else offline
#   scripts/cluster-test.sh --offline  the offline checks only
#   KEEP=1 scripts/cluster-test.sh     keep the cluster afterwards (kind/k3d cluster recsys-test)
#
# On a cluster (kind, else k3d):
#   1. create the cluster; build the four stage images (deploy/build-images.sh, TAG=dev) and load
#      them into it
#   2. train a tiny bundle and its ranker here (`recsys train` / `recsys train-ranker` on a synthetic
#      dataset), copy it onto the dev overlay's model claim through a helper pod and point
#      /models/current at it (ln + mv -T: atomic, as the retrain job does)
#   3. apply k8s/overlays/dev, wait until every stage is rolled out and ready
#   4. `recsys recommend` through the public Service (port-forward to svc/orchestrator)
#   5. roll out a second bundle the same way, wait until every stage's model_info reports it
#      (their /metrics through port-forwards), recommend again
# Offline (this project's machines: no kind/k3d, no container runtime for a cluster, no registry):
# it says so and runs what CI runs for the deployment: every overlay rendered (kubectl kustomize),
# schema and field validation, the manifest and policy checks (env vs configSchema, ports, probes,
# security, ServiceAccounts, Pod Security, heap caps, HPAs, NetworkPolicies, Redis/Secret, shards),
# the model-sync publish/fetch test, promtool check rules / test rules / check config.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NAME=recsys-test
NS=recsys-dev
log() { echo "cluster-test: $*" >&2; }
die() { log "$*"; exit 1; }

offline() {
  log "offline checks: render every overlay"
  for overlay in k8s/overlays/*/; do
    kubectl kustomize "$overlay" >/dev/null || die "kubectl kustomize $overlay failed"
    log "  rendered $overlay"
  done
  log "offline checks: promtool"
  promtool check rules deploy/prometheus/rules/*.rules.yml
  promtool test rules deploy/prometheus/tests/*.test.yml
  promtool check config deploy/prometheus/prometheus.yml
  log "offline checks: packages/deploy-checks (schemas, manifest and policy checks, model-sync, rules)"
  npx tsc --build packages/deploy-checks
  npx vitest run packages/deploy-checks/src/manifests.test.ts packages/deploy-checks/src/prometheus.test.ts packages/deploy-checks/src/model-sync.test.ts
  log "offline checks passed (no cluster was created: nothing was applied, no image was built)"
}

runtime=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then runtime=$candidate; break; fi
done
tool=""
if [ "${1:-}" != --offline ] && [ -n "$runtime" ]; then
  if command -v kind >/dev/null; then tool=kind; elif command -v k3d >/dev/null; then tool=k3d; fi
fi
if [ -z "$tool" ]; then
  why="--offline given"
  if [ "${1:-}" != --offline ]; then
    have() { if command -v "$1" >/dev/null; then echo "$1 installed"; else echo "no $1"; fi; }
    why="no cluster can be created here ($(have kind), $(have k3d), ${runtime:-no working docker or podman}${runtime:+$runtime works})"
  fi
  log "$why"
  offline
  exit 0
fi

log "creating a $tool cluster $NAME ($runtime)"
if [ "$tool" = kind ]; then
  [ "$runtime" = podman ] && export KIND_EXPERIMENTAL_PROVIDER=podman
  kind create cluster --name "$NAME" --wait 120s
else
  k3d cluster create "$NAME" --wait
fi
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then log "kept the cluster $NAME"; return; fi
  if [ "$tool" = kind ]; then kind delete cluster --name "$NAME"; else k3d cluster delete "$NAME"; fi
  kill $(jobs -p) 2>/dev/null || true
}
trap cleanup EXIT

log "building and loading the images"
TAG=dev REGISTRY=localhost deploy/build-images.sh
for stage in candidate-generation retrieval ranking orchestrator; do
  archive=$(mktemp /tmp/recsys-image-XXXXXX.tar)
  buildah push "localhost/recsys/$stage:dev" "docker-archive:$archive:localhost/recsys/$stage:dev"
  if [ "$tool" = kind ]; then kind load image-archive "$archive" --name "$NAME"; else k3d image import "$archive" -c "$NAME"; fi
  rm -f "$archive"
done

work=$(mktemp -d)
npx tsc --build
train_bundle() { # train_bundle <dir> <seed>: a tiny bundle with its ranker
  local dataset="synthetic:users=300,items=2000,events=20,seed=$2"
  node packages/cli/dist/main.js train --dataset "$dataset" --out "$1" --epochs 2 --holdout none
  node packages/cli/dist/main.js train-ranker --dataset "$dataset" --model "$1"
}
version_of() { node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1] + "/manifest.json", "utf8")).modelVersion)' "$1"; }

log "applying the namespace and the model claim, and a helper pod that writes bundles onto it"
kubectl kustomize k8s/overlays/dev >"$work/dev.yaml"
kubectl apply -f k8s/overlays/dev/namespace.yaml
kubectl apply -f "$work/dev.yaml" -l app.kubernetes.io/component=models
kubectl -n "$NS" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: { name: model-writer }
spec:
  securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: writer
      image: localhost/recsys/orchestrator:dev
      command: ["sleep", "infinity"]
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }
      volumeMounts: [{ name: models, mountPath: /models }]
  volumes: [{ name: models, persistentVolumeClaim: { claimName: recsys-models } }]
EOF
kubectl -n "$NS" wait --for=condition=Ready pod/model-writer --timeout=180s
publish() { # publish <bundle dir>: copy, then flip /models/current atomically
  local version
  version=$(version_of "$1")
  kubectl -n "$NS" cp "$1" "model-writer:/models/$version"
  kubectl -n "$NS" exec model-writer -- sh -c "cd /models && ln -sfn '$version' current.tmp && mv -T current.tmp current"
  log "published $version"
}
train_bundle "$work/v1" 1
publish "$work/v1"

log "applying k8s/overlays/dev"
kubectl apply -f "$work/dev.yaml"
for workload in deploy/candidate-generation deploy/ranking deploy/orchestrator statefulset/retrieval-0; do
  kubectl -n "$NS" rollout status "$workload" --timeout=600s
done

kubectl -n "$NS" port-forward svc/orchestrator 55051:50051 >/dev/null 2>&1 &
sleep 3
recommend() { node packages/cli/dist/main.js recommend --address 127.0.0.1:55051 --user "$1" --count 10 --json; }
recommend 1 | tee "$work/first.json"

versions() { # the model_version every stage's pods report
  local port=59464
  for workload in deploy/candidate-generation statefulset/retrieval-0 deploy/orchestrator; do
    kubectl -n "$NS" port-forward "$workload" "$port:9464" >/dev/null 2>&1 &
    local pf=$!
    sleep 2
    curl -fsS "http://127.0.0.1:$port/metrics" | sed -n 's/^recsys_[a-z_]*_model_info{model_version="\([^"]*\)"} 1$/\1/p'
    kill "$pf"
    port=$((port + 1))
  done
}
train_bundle "$work/v2" 2
publish "$work/v2"
want=$(version_of "$work/v2")
for _ in $(seq 60); do
  got=$(versions | sort -u | tr '\n' ' ')
  [ "$got" = "$want " ] && break
  log "waiting for every stage to serve $want (now: $got)"
  sleep 10
done
[ "$got" = "$want " ] || die "the stages serve '$got', expected $want"
recommend 2 >/dev/null
log "rolled out $want to every stage; recommend answers"
