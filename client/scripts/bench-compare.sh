#!/usr/bin/env bash
# Runs `shardline bench` against a Shardline group and a 3-member etcd at the
# same settings and prints a Markdown table of throughput, p99 and the ratio.
#
#   shardline playground &                    # or any group; found as the CLI finds it
#   client/scripts/local-etcd.sh start
#   client/scripts/bench-compare.sh [DURATION] [CONCURRENCY...]
#   client/scripts/local-etcd.sh stop
#
# Defaults: 10s per run, concurrency 1 16 64 256, 100k keys, 256-byte values,
# uniform keys; puts, then linearizable gets after preloading every key.
# Each setting runs Shardline and etcd back to back so both see the same
# machine load. SHARDLINE (the CLI binary) and ETCD_ENDPOINTS override.
set -euo pipefail
duration=${1:-10s}
shift || true
conc=("$@")
[ ${#conc[@]} -gt 0 ] || conc=(1 16 64 256)
bin=${SHARDLINE:-$(dirname "$0")/../../target/release/shardline}
etcd=${ETCD_ENDPOINTS:-127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579}
common=(--keys 100000 --value-size 256 --duration "$duration" --warmup 1s -o json)

run() { # target workload concurrency [extra...]
  local target=$1 workload=$2 c=$3
  shift 3
  if [ "$target" = etcd ]; then
    "$bin" bench --target etcd --endpoints "$etcd" --workload "$workload" --concurrency "$c" "${common[@]}" "$@"
  else
    "$bin" bench --workload "$workload" --concurrency "$c" "${common[@]}" "$@"
  fi
}

row() { # workload concurrency shardline-json etcd-json
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import json, sys
w, c, s, e = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])["total"], json.loads(sys.argv[4])["total"]
ratio = s["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("nan")
ms = lambda us: f"{us / 1000:.1f}"
print(f"| {w} | {c} | {s['ops_per_sec']:.0f} | {ms(s['latency_us']['p99'])} | {e['ops_per_sec']:.0f} | "
      f"{ms(e['latency_us']['p99'])} | {ratio:.2f} | {s['errors']}/{e['errors']} |")
PY
}

echo "| workload | concurrency | shardline ops/s | shardline p99 ms | etcd ops/s | etcd p99 ms | shardline/etcd | errors s/e |"
echo "|---|---|---|---|---|---|---|---|"
for workload in put get; do
  for i in "${!conc[@]}"; do
    c=${conc[$i]}
    extra=()
    # Load every key once before the first get run of each target.
    if [ "$workload" = get ] && [ "$i" = 0 ]; then extra=(--preload); fi
    s=$(run shardline "$workload" "$c" "${extra[@]}")
    e=$(run etcd "$workload" "$c" "${extra[@]}")
    row "$workload" "$c" "$s" "$e"
  done
done
