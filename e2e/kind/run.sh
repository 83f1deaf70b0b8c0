#!/usr/bin/env bash
# kind end-to-end test of the Shardline operator.
#
# Creates a kind cluster, builds the image (Dockerfile at the repo root) and
# loads it, installs the Helm chart, applies examples/minimal.yaml, waits for
# condition=Ready, writes and reads keys with the shardline CLI, scales the
# shard groups 2 -> 3 -> 2, deletes a pod and waits for recovery. On failure
# it dumps cluster state and logs (also into $ARTIFACTS, default
# ./e2e-kind-logs).
#
# Needs docker, kind, kubectl and helm. Runs only with SHARDLINE_E2E_KIND=1.
# KEEP_CLUSTER=1 leaves the kind cluster up afterwards.
#
# The CLI reaches the controller over `kubectl port-forward` for `status`;
# key reads and writes run the same CLI in a pod inside the cluster, because
# the shard map hands clients the groups' in-cluster DNS names, which a
# port-forward from the host cannot resolve.
set -euo pipefail

if [[ "${SHARDLINE_E2E_KIND:-}" != "1" ]]; then
  echo "kind e2e skipped: set SHARDLINE_E2E_KIND=1 to run it (needs docker, kind, kubectl, helm)"
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-shardline-e2e}"
IMAGE="${SHARDLINE_IMAGE:-shardline:dev}"
OPERATOR_NS="shardline-system"
NS="shardline-e2e"
NAME="demo"
ARTIFACTS="${ARTIFACTS:-$PWD/e2e-kind-logs}"
LOCAL_PORT="${LOCAL_PORT:-17400}"
PF_PID=""

log() { printf '\n=== %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

dump_logs() {
  mkdir -p "$ARTIFACTS"
  log "dumping state and logs to $ARTIFACTS"
  {
    kubectl get shardedclusters -A -o yaml
    kubectl describe shardedcluster -n "$NS" "$NAME"
    kubectl get all,pvc,pdb,configmap -n "$NS" -o wide
    kubectl get events -n "$NS" --sort-by=.lastTimestamp
    kubectl get pods -n "$OPERATOR_NS" -o wide
  } >"$ARTIFACTS/state.txt" 2>&1 || true
  kubectl logs -n "$OPERATOR_NS" -l app.kubernetes.io/component=operator --all-containers --prefix --tail=-1 \
    >"$ARTIFACTS/operator.log" 2>&1 || true
  kubectl logs -n "$NS" -l app.kubernetes.io/instance="$NAME" --all-containers --prefix --tail=2000 \
    >"$ARTIFACTS/pods.log" 2>&1 || true
  kind export logs "$ARTIFACTS/kind" --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
  tail -n 50 "$ARTIFACTS/state.txt" "$ARTIFACTS/operator.log" || true
}

on_exit() {
  local rc=$?
  if [[ -n "$PF_PID" ]]; then
    kill "$PF_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 ]]; then
    dump_logs
    echo "kind e2e FAILED (exit $rc)"
  else
    echo "kind e2e passed"
  fi
  if [[ "${KEEP_CLUSTER:-0}" != "1" ]]; then
    kind delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
  fi
  exit $rc
}
trap on_exit EXIT

# Runs the shardline CLI inside the cluster against the client Service.
cli() {
  kubectl run -n "$NS" "cli-$RANDOM$RANDOM" --rm -i --restart=Never --quiet \
    --image="$IMAGE" --image-pull-policy=IfNotPresent \
    --env="SHARDLINE_ENDPOINTS=$NAME:7400" -- shardline "$@"
}

wait_ready() {
  kubectl wait -n "$NS" "shardedcluster/$NAME" --for=condition=Ready --timeout="${1:-15m}"
}

check_keys() {
  local n=$1
  for i in $(seq 1 "$n"); do
    got="$(cli get "e2e-key-$i" | tr -d '\r')"
    [[ "$got" == "value-$i" ]] || die "key e2e-key-$i: expected value-$i, got '$got'"
  done
  echo "read back $n keys"
}

log "creating kind cluster $KIND_CLUSTER"
if ! kind get clusters | grep -qx "$KIND_CLUSTER"; then
  kind create cluster --name "$KIND_CLUSTER" --wait 180s
fi
kubectl config use-context "kind-$KIND_CLUSTER"

log "building $IMAGE"
docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

log "installing the chart"
helm upgrade --install shardline "$ROOT/charts/shardline" \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent \
  --wait --timeout 5m

log "creating ShardedCluster $NAME"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NS" -f "$ROOT/examples/minimal.yaml"
kubectl patch -n "$NS" "shardedcluster/$NAME" --type merge -p "{\"spec\":{\"image\":\"$IMAGE\"}}"
wait_ready 15m
kubectl get -n "$NS" shardedclusters

log "controller status over a port-forward"
kubectl port-forward -n "$NS" "svc/$NAME" "$LOCAL_PORT:7400" >/dev/null 2>&1 &
PF_PID=$!
for _ in $(seq 1 30); do
  (exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_PORT") 2>/dev/null && break
  sleep 1
done
if command -v shardline >/dev/null; then
  SHARDLINE_ENDPOINTS="127.0.0.1:$LOCAL_PORT" shardline status --output json
else
  docker run --rm --network host -e SHARDLINE_ENDPOINTS="127.0.0.1:$LOCAL_PORT" "$IMAGE" \
    shardline status --output json
fi

log "writing and reading keys"
KEYS=20
for i in $(seq 1 "$KEYS"); do cli put "e2e-key-$i" "value-$i" >/dev/null; done
check_keys "$KEYS"

log "scaling groups 2 -> 3"
kubectl scale -n "$NS" "shardedcluster/$NAME" --replicas=3
kubectl wait -n "$NS" "shardedcluster/$NAME" --for=jsonpath='{.status.readyGroups}'=3 --timeout=10m
wait_ready 10m
check_keys "$KEYS"

log "scaling groups 3 -> 2 (drain, then delete)"
kubectl scale -n "$NS" "shardedcluster/$NAME" --replicas=2
kubectl wait -n "$NS" "statefulset/$NAME-g3" --for=delete --timeout=10m
kubectl wait -n "$NS" "shardedcluster/$NAME" --for=jsonpath='{.status.readyGroups}'=2 --timeout=5m
wait_ready 10m
check_keys "$KEYS"

log "deleting pod $NAME-g1-0 and waiting for recovery"
kubectl delete pod -n "$NS" "$NAME-g1-0" --wait=true
for _ in $(seq 1 60); do
  kubectl get pod -n "$NS" "$NAME-g1-0" >/dev/null 2>&1 && break
  sleep 2
done
kubectl wait -n "$NS" "pod/$NAME-g1-0" --for=condition=Ready --timeout=5m
wait_ready 10m
check_keys "$KEYS"
