#!/usr/bin/env bash
# How long the GraphQL guard's analysis takes, in one run on this machine: graphql-bench
# (release build) times lex, parse, structural validation, every metric and cost against a
# schema for a small (~200 B), a medium (~2 KiB) and a large (~20 KiB) operation; graphql-core
# (pip) parses, and parses and validates, the very same documents against the same schema.
# Both run on CPU 0, one after the other.
#
# Usage: scripts/bench-graphql.sh [--iterations 200000]  (per 200 bytes of document: about 1 s a round)
# Needs: python3 with graphql-core (pip install graphql-core). Loopback and CPU only.
set -euo pipefail

iterations=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --iterations) iterations="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
python3 -c 'import graphql' 2>/dev/null || { echo "bench-graphql: graphql-core is missing (pip install graphql-core)" >&2; exit 2; }

bench_product=GraphQLBench
# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"

"$bin/GraphQLBench" write "$work"
echo "== Rampart's analysis (lex, parse, validation, metrics, cost with a schema)"
taskset -c 0 "$bin/GraphQLBench" --iterations "$iterations" | tee "$work/rampart.csv"
echo "== graphql-core $(python3 -c 'import graphql; print(graphql.__version__)') (parse; parse + validate)"
taskset -c 0 python3 "$root/scripts/bench-graphql.py" "$work" "$((iterations / 100))" | tee "$work/core.csv"
echo "== ratios (graphql-core time / Rampart time)"
awk -F, '
  FNR == 1 { next }
  FILENAME ~ /rampart/ { r[$1] = $7; next }
  { printf "%s: parse %.1fx, parse + validate %.1fx\n", $1, $4 / r[$1], $5 / r[$1] }' "$work/rampart.csv" "$work/core.csv"

# Through the gateway: the medium operation POSTed to a GraphQL route (analysed, then
# forwarded) and to a plain route (forwarded only), one event loop on CPU 0, the echo
# upstream on CPU 1 with wrk. The difference is what the guard costs per request.
connections=32
duration=10s
echo "building rampart (release)..." >&2
swift build -c release --product rampart >&2
upstream_port=18121
proxy_port=18122
admin_port=18123
start echo 1 "$rampart" echo --port "$upstream_port" --name api
wait_port "$upstream_port"
rampart_config "$work/rampart.yml" "" "  - {name: graphql, match: {pathPrefix: /graphql}, pool: app, graphql: {schema: \"$work/schema.graphql\", maxCost: off}}
  - {name: plain, match: {pathPrefix: /plain}, pool: app}"
RAMPART_THREADS=1 start rampart 0 "$rampart" serve --config "$work/rampart.yml"
rampart_pid=$started
wait_port "$proxy_port"
python3 - "$work" <<'PY'
import json, sys
folder = sys.argv[1]
body = json.dumps({"query": open(f"{folder}/medium.graphql").read(), "variables": {"id": "b1"}})
lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body) + "\n"
open(f"{folder}/post.lua", "w").write(lua)
PY
echo "== the medium operation through the gateway ($connections connections, $duration; p50/p99 in ms; cpu in us per request)"
printf '%-8s %10s %8s %8s %8s\n' route per-second p50 p99 cpu
read -r grps gp50 gp99 gcpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port/graphql" "$rampart_pid" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' graphql "$grps" "$gp50" "$gp99" "$gcpu"
read -r prps pp50 pp99 pcpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port/plain" "$rampart_pid" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' plain "$prps" "$pp50" "$pp99" "$pcpu"
awk -v g="$grps" -v p="$prps" -v gc="$gcpu" -v pc="$pcpu" 'BEGIN { printf "graphql route / plain route: throughput %.2fx, cpu per request +%.1f us\n", g / p, gc - pc }'
