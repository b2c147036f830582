#!/usr/bin/env bash
# Replays WAF corpora through a running Rampart with threat detection on and prints
# detection and false-positive rates per family (../shared/tools/waf-eval.py).
#
#   scripts/waf-eval.sh [--binary PATH] [--attacks] [--benign] [-- extra waf-eval.py args]
#
# --attacks: the CRS attack records of the families issue 3 names (913, 921, 930-934,
#            941-944) from ../shared/corpora/crs; --benign: Tests/Corpora/benign.jsonl.
# Both by default; give only one with --details FILE, which each run writes. The corpora
# and the runner live outside the repository; without ../shared the run is skipped, loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=.build/debug/rampart
attacks=0; benign=0; extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --attacks) attacks=1; shift ;;
        --benign) benign=1; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [ $attacks = 0 ] && [ $benign = 0 ]; then attacks=1; benign=1; fi
shared=${RAMPART_SHARED:-../shared}
runner=$shared/tools/waf-eval.py
if [ ! -f "$runner" ]; then echo "SKIPPED: $runner not found (the WAF corpora and runner live in ../shared)" >&2; exit 0; fi
[ -x "$binary" ] || { echo "no $binary; build first (swift build)" >&2; exit 2; }

logs=$(mktemp -d)
"$binary" echo --port 18091 --name app >"$logs/echo.log" 2>&1 &
echo_pid=$!
"$binary" serve --config benchmarks/waf/rampart.yml >"$logs/gateway.log" 2>&1 &
gateway_pid=$!
trap 'kill $gateway_pid $echo_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$logs"' EXIT
for _ in $(seq 1 100); do
    curl -sf -o /dev/null http://127.0.0.1:18901/ready && break
    sleep 0.1
done

if [ $attacks = 1 ]; then
    families=()
    for f in 913 921 930 931 932 933 934 941 942 943 944; do families+=("$shared"/corpora/crs/$f-*.jsonl); done
    echo "== CRS attack records (families 913, 921, 930-934, 941-944)"
    python3 "$runner" --base-url http://127.0.0.1:18080 --expect attack --concurrency 8 --quiet "${extra[@]}" "${families[@]}"
fi
if [ $benign = 1 ]; then
    echo "== Our benign corpus (Tests/Corpora/benign.jsonl)"
    python3 "$runner" --base-url http://127.0.0.1:18080 --concurrency 8 --quiet "${extra[@]}" Tests/Corpora/benign.jsonl
fi
