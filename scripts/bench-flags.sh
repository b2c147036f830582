#!/usr/bin/env bash
# How fast feature flags are, in one run on this machine:
#   in process (flags-bench): evaluations per second of a static flag, a targeting rule with
#   three conditions, and a 10/30/60 fractional split, over 10,000 prepared contexts;
#   over HTTP: OFREP single-flag and bulk evaluations through Rampart (release build), next to
#   nginx answering the same URLs with the same JSON bodies from its configuration: the floor
#   for an HTTP exchange of that size, with no evaluation at all.
# Both servers get one thread (Rampart's event loop, nginx's worker) pinned to CPU 0; wrk runs
# on CPU 1.
#
# Usage: scripts/bench-flags.sh [--duration 10s] [--connections 32]
# Needs: nginx and wrk (apt-get install -y nginx wrk). Loopback only.
set -euo pipefail

duration=10s
connections=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench-flags: $tool is missing (apt-get install -y nginx wrk)" >&2; exit 2; }
done

# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"
echo "building FlagsBench (release)..." >&2
swift build -c release --product FlagsBench >&2

echo "== in process (one thread)"
taskset -c 0 "$bin/FlagsBench" --evaluations 2000000

proxy_port=18091
admin_port=18092
nginx_port=18093
mkdir -p "$work/flags"
"$bin/FlagsBench" flags > "$work/flags/bench.json"
cat > "$work/rampart.yml" <<YAML
listeners:
  traffic: {address: "127.0.0.1:$proxy_port"}
  admin: {address: "127.0.0.1:$admin_port"}
log: {level: warning, accessLog: false}
pools:
  app: {instances: ["http://127.0.0.1:9"]}
shield:
  flood: {minClientRate: 1000000000}
flags:
  sources: ["$work/flags"]
YAML
RAMPART_THREADS=1 start rampart 0 "$rampart" serve --config "$work/rampart.yml"
rampart_pid=$started
wait_port "$proxy_port"

context='{"context": {"targetingKey": "user-42", "country": "DE", "age": 30, "email": "u42@example.com"}}'
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$context'
wrk.headers["Content-Type"] = "application/json"
LUA

# nginx answers with exactly what Rampart answers.
single=$(curl -s -X POST -H 'Content-Type: application/json' -d "$context" "http://127.0.0.1:$proxy_port/ofrep/v1/evaluate/flags/three-conditions")
bulk=$(curl -s -X POST -H 'Content-Type: application/json' -d "$context" "http://127.0.0.1:$proxy_port/ofrep/v1/evaluate/flags")
echo "single answer: $single" >&2
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
$(nginx_common "$work/nginx")
http {
$(nginx_http_common)
  server {
    listen 127.0.0.1:$nginx_port;
    default_type application/json;
    location = /ofrep/v1/evaluate/flags/three-conditions { return 200 '$single'; }
    location = /ofrep/v1/evaluate/flags { return 200 '$bulk'; }
  }
}
NGINX
start nginx 0 nginx -c "$work/nginx.conf" -g 'daemon off;'
nginx_pid=$started
wait_port "$nginx_port"

echo "== OFREP over HTTP ($connections connections, $duration; p50/p99 in ms; cpu in us per request)"
printf '%-8s %-8s %10s %8s %8s %8s\n' request server per-second p50 p99 cpu
results="$work/results"
: > "$results"
for kind in single bulk; do
  path=/ofrep/v1/evaluate/flags; [ "$kind" = single ] && path=/ofrep/v1/evaluate/flags/three-conditions
  read -r rps p50 p99 cpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port$path" "$rampart_pid" -s "$work/post.lua")
  printf '%-8s %-8s %10s %8s %8s %8s\n' "$kind" rampart "$rps" "$p50" "$p99" "$cpu"
  echo "$kind rampart $rps $p50 $p99" >> "$results"
  read -r rps p50 p99 cpu < <(run_wrk 1 "http://127.0.0.1:$nginx_port$path" "$nginx_pid" -s "$work/post.lua")
  printf '%-8s %-8s %10s %8s %8s %8s\n' "$kind" nginx "$rps" "$p50" "$p99" "$cpu"
  echo "$kind nginx $rps $p50 $p99" >> "$results"
done
echo "== ratios (Rampart / nginx's static answer)"
awk '
  $2 == "rampart" { r[$1] = $3; rp50[$1] = $4; rp99[$1] = $5 }
  $2 == "nginx"   { n[$1] = $3; np50[$1] = $4; np99[$1] = $5 }
  END { for (k in r) printf "%s: throughput %.2fx, p50 %.2fx, p99 %.2fx\n", k, r[k] / n[k], rp50[k] / np50[k], rp99[k] / np99[k] }' "$results"
