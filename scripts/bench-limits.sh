#!/usr/bin/env bash
# How fast rate-limit decisions are, in one run on this machine:
#   in process, memory store: decisions per second (the store alone, and the whole limiter
#   path), on one task and on two;
#   through Redis on loopback: Rampart's shared-limit decision (one EVALSHA of the GCRA
#   script through RampartStore's client, reply parsed) against redis-benchmark sending the
#   same EVALSHA with the same arguments (the floor: Redis's own C client, nothing parsed),
#   one at a time and 50 in flight, p50/p99 latency and throughput.
# The Redis pair takes turns for --rounds rounds; every round is printed and each side is
# reported at its best round (noise on a shared machine only ever slows a run down).
#
# Usage: scripts/bench-limits.sh [--rounds 3] [--decisions 20000]
# Needs: redis-server, redis-cli, redis-benchmark (scripts/services.sh install). Loopback only.
set -euo pipefail

rounds=3
decisions=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --decisions) decisions="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "bench-limits: $tool is missing (scripts/services.sh install)" >&2; exit 2; }
done

bench_product=LimitsBench
# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"
bench="$bin/LimitsBench"

port=18379
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "== in process, memory store (10,000 keys)"
"$bench" memory --decisions 2000000 --tasks 1
"$bench" memory --decisions 2000000 --tasks 2

# The same script and arguments Rampart sends: GCRA, 1,000,000 per minute (an interval of
# 1 us, a burst of 1,000,000, so every decision admits and writes), cost 1, 10,000 keys.
sha=$(redis-cli -p "$port" SCRIPT LOAD "$("$bench" script gcra)")
floor() { # floor CLIENTS: p50 p99 (us) and requests/s from redis-benchmark
  redis-benchmark -p "$port" -n "$decisions" -c "$1" -r 10000 --csv EVALSHA "$sha" 1 "bench:bench|ip:__rand_int__" 1 1000000 1 2>/dev/null \
    | awk -F'","' 'NR==2 { gsub(/"/, "", $0); split($0, f, ","); printf "%d %d %d\n", f[5] * 1000, f[7] * 1000, f[2] }'
}
ours() { # ours CONCURRENCY: p50 p99 (us) and decisions/s from limits-bench
  "$bench" redis "redis://127.0.0.1:$port" --decisions "$decisions" --concurrency "$1" \
    | sed -n 's/.*per_second=\([0-9]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\).*/\2 \3 \1/p'
}

echo "== through Redis on loopback ($decisions decisions per run; p50 and p99 in microseconds)"
printf '%-6s %-12s %-16s %8s %8s %10s\n' round in-flight client p50 p99 per-second
results="$work/results"
: > "$results"
for round in $(seq "$rounds"); do
  for c in 1 50; do
    read -r p50 p99 rps < <(ours "$c")
    printf '%-6s %-12s %-16s %8s %8s %10s\n' "$round" "$c" rampart "$p50" "$p99" "$rps"
    echo "rampart $c $p50 $p99 $rps" >> "$results"
    read -r p50 p99 rps < <(floor "$c")
    printf '%-6s %-12s %-16s %8s %8s %10s\n' "$round" "$c" redis-benchmark "$p50" "$p99" "$rps"
    echo "floor $c $p50 $p99 $rps" >> "$results"
  done
done

echo "== best round of each (ratios: Rampart / redis-benchmark; latency lower is better, throughput higher)"
for c in 1 50; do
  awk -v c="$c" '
    $2 == c && $1 == "rampart" { if (!rp50 || $3 < rp50) rp50 = $3; if (!rp99 || $4 < rp99) rp99 = $4; if ($5 > rrps) rrps = $5 }
    $2 == c && $1 == "floor"   { if (!fp50 || $3 < fp50) fp50 = $3; if (!fp99 || $4 < fp99) fp99 = $4; if ($5 > frps) frps = $5 }
    END {
      printf "in flight %s: rampart p50 %d us, p99 %d us, %d/s; redis-benchmark p50 %d us, p99 %d us, %d/s; p50 %.2fx, p99 %.2fx, throughput %.2fx\n",
        c, rp50, rp99, rrps, fp50, fp99, frps, rp50 / fp50, rp99 / fp99, rrps / frps
    }' "$results"
done
