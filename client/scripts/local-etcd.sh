#!/usr/bin/env bash
# Starts or stops a 3-member etcd cluster on loopback, for comparing
# `shardline bench --target etcd` with a Shardline playground on the same
# machine (Debian: `apt-get install etcd-server`).
#
#   client/scripts/local-etcd.sh start [DATA_ROOT]   # default /tmp/shardline-etcd
#   client/scripts/local-etcd.sh stop  [DATA_ROOT]
#
# Members listen for clients on 127.0.0.1:2379, :2479, :2579 (peers on
# 2380, 2480, 2580); data lives under DATA_ROOT on the same disk as the
# playground's, with etcd's default durability (fsync on every commit).
# Old revisions are compacted (keeping the last 100,000, as a production
# etcd compacts), or repeated benchmarks fill etcd's 2 GB quota and it
# refuses writes (alarm NOSPACE).
# Endpoints for the bench: 127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579
set -euo pipefail
cmd=${1:-start}
root=${2:-/tmp/shardline-etcd}
cluster="e1=http://127.0.0.1:2380,e2=http://127.0.0.1:2480,e3=http://127.0.0.1:2580"

case "$cmd" in
start)
  command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
  mkdir -p "$root"
  for i in 1 2 3; do
    case $i in 1) c=2379 p=2380 ;; 2) c=2479 p=2480 ;; 3) c=2579 p=2580 ;; esac
    ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-} nohup etcd --name "e$i" \
      --data-dir "$root/e$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token shardline-bench \
      --auto-compaction-mode revision --auto-compaction-retention 100000 \
      --log-level warn >"$root/e$i.log" 2>&1 &
    echo $! >"$root/e$i.pid"
  done
  for _ in $(seq 1 100); do
    if ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579 endpoint health >/dev/null 2>&1; then
      echo "etcd up: 127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579 (data in $root)"
      exit 0
    fi
    sleep 0.2
  done
  echo "etcd did not become healthy; logs in $root" >&2
  exit 1
  ;;
stop)
  pids=()
  for i in 1 2 3; do
    if [ -f "$root/e$i.pid" ]; then
      pids+=("$(cat "$root/e$i.pid")")
      rm -f "$root/e$i.pid"
    fi
  done
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  echo "etcd stopped (data left in $root)"
  ;;
*)
  echo "usage: $0 start|stop [DATA_ROOT]" >&2
  exit 2
  ;;
esac
