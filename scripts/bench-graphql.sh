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
# forwarded), to a GraphQL route with the response cache (analysed, normalized, answered from
# memory after the first request), and to a plain route (forwarded only). The upstream is nginx
# answering a fixed GraphQL result with `Cache-Control: max-age=60`; nginx answering the same
# bytes by itself is the anchor. One event loop on CPU 0; nginx and wrk on CPU 1. The WAF is
# off for this part (its body inspection, ~450 us a request, would hide the rest).
connections=32
duration=10s
echo "building rampart (release)..." >&2
swift build -c release --product rampart >&2
upstream_port=18121
proxy_port=18122
admin_port=18123
answer='{"data":{"book":{"__typename":"Book","id":"b1","title":"Dune","author":{"__typename":"Author","id":"a1","name":"Frank Herbert"}}}}'
{
  echo "worker_processes 1;"
  nginx_common "$work/nginx"
  echo "http {"
  nginx_http_common
  echo "  server {"
  echo "    listen 127.0.0.1:$upstream_port;"
  echo "    location / { default_type application/json; add_header Cache-Control \"public, max-age=60\"; return 200 '$answer'; }"
  echo "  }"
  echo "}"
} > "$work/nginx.conf"
start nginx 1 nginx -p "$work" -c "$work/nginx.conf" -g "daemon off;"
wait_port "$upstream_port"
rampart_config "$work/rampart.yml" "  flood: {minClientRate: 1000000000}
  waf: {mode: off}" "  - {name: graphql, match: {pathPrefix: /graphql}, pool: app, graphql: {schema: \"$work/schema.graphql\", maxCost: off}}
  - {name: cached, match: {pathPrefix: /cached}, pool: app, graphql: {schema: \"$work/schema.graphql\", maxCost: off, cache: {scope: public}}}
  - {name: plain, match: {pathPrefix: /plain}, pool: app}"
RAMPART_THREADS=1 start rampart 0 "$rampart" serve --config "$work/rampart.yml"
rampart_pid=$started
wait_port "$proxy_port"
python3 - "$work" <<'PY'
import json, sys
folder = sys.argv[1]
body = json.dumps({"query": open(f"{folder}/medium.graphql").read(), "variables": {"id": "b1"}})
open(f"{folder}/post.json", "w").write(body)
lua = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body) + "\n"
open(f"{folder}/post.lua", "w").write(lua)
PY
# The first request misses and is stored; every later one hits.
curl -s -o /dev/null -D "$work/miss.txt" -H 'Content-Type: application/json' --data-binary "@$work/post.json" "http://127.0.0.1:$proxy_port/cached"
grep -qi '^x-cache: MISS' "$work/miss.txt" || { echo "bench-graphql: the cached route did not answer MISS first" >&2; cat "$work/miss.txt" >&2; exit 1; }
echo "== the medium operation ($connections connections, $duration; p50/p99 in ms; cpu in us per request)"
printf '%-8s %10s %8s %8s %8s\n' route per-second p50 p99 cpu
read -r grps gp50 gp99 gcpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port/graphql" "$rampart_pid" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' graphql "$grps" "$gp50" "$gp99" "$gcpu"
read -r crps cp50 cp99 ccpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port/cached" "$rampart_pid" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' cached "$crps" "$cp50" "$cp99" "$ccpu"
read -r prps pp50 pp99 pcpu < <(run_wrk 1 "http://127.0.0.1:$proxy_port/plain" "$rampart_pid" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' plain "$prps" "$pp50" "$pp99" "$pcpu"
read -r nrps np50 np99 _ < <(run_wrk 0 "http://127.0.0.1:$upstream_port/direct" "" -s "$work/post.lua")
printf '%-8s %10s %8s %8s %8s\n' nginx "$nrps" "$np50" "$np99" "-"
echo "cache: $(curl -s "http://127.0.0.1:$admin_port/api/system/graphql/cache")"
awk -v g="$grps" -v c="$crps" -v p="$prps" -v n="$nrps" -v gc="$gcpu" -v pc="$pcpu" -v cc="$ccpu" 'BEGIN {
  printf "graphql route / plain route: throughput %.2fx, cpu per request +%.1f us\n", g / p, gc - pc
  printf "cached / uncached graphql route: throughput %.2fx, cpu per request %.1f vs %.1f us\n", c / g, cc, gc
  printf "cached graphql route / nginx answering the same bytes alone: throughput %.2fx\n", c / n }'
