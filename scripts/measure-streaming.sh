#!/usr/bin/env bash
# Streams 1 GiB up and 1 GiB down through the gateway (release build) and reports the
# gateway's peak resident memory before and after: bodies must stream, not accumulate.
#
# Usage: scripts/measure-streaming.sh [--bytes N]      (default 1073741824)
# Needs: curl. Loopback only.
set -euo pipefail

bytes=1073741824
while [ $# -gt 0 ]; do
  case "$1" in
    --bytes) bytes="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"

echo_port=18180; proxy_port=18181; admin_port=18182
"$rampart" echo --port $echo_port --name big >"$work/echo.out" 2>&1 &
pids+=($!)
cat > "$work/rampart.yml" <<EOF
listeners:
  traffic: {address: "127.0.0.1:$proxy_port"}
  admin: {address: "127.0.0.1:$admin_port"}
log: {level: warning, accessLog: false}
proxy:
  limits: {maxBodyBytes: 4GiB}
  timeouts: {total: 10m, firstByte: 5m}
pools:
  app: {instances: ["http://127.0.0.1:$echo_port"]}
EOF
"$rampart" serve --config "$work/rampart.yml" >"$work/rampart.out" 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$proxy_port/"; then break; fi
  sleep 0.1
done

mib() { awk -v kb="$(awk "/$1/ {print \$2}" "/proc/$gateway/status")" 'BEGIN { printf "%.1f", kb / 1024 }'; }

curl -s -o /dev/null "http://127.0.0.1:$proxy_port/bytes/1048576"
echo "gateway after warm-up:      peak $(mib VmHWM) MiB, now $(mib VmRSS) MiB"

start=$(date +%s.%N)
up=$(head -c "$bytes" /dev/zero | curl -sS -T - -H "Content-Type: application/octet-stream" \
  "http://127.0.0.1:$proxy_port/upload")
end=$(date +%s.%N)
received=$(echo "$up" | sed -n 's/.*"bodyBytes":\([0-9]*\).*/\1/p')
[ "$received" = "$bytes" ] || { echo "upload: the upstream received $received of $bytes bytes" >&2; exit 1; }
echo "after $bytes bytes up:   peak $(mib VmHWM) MiB, now $(mib VmRSS) MiB ($(awk -v s="$start" -v e="$end" -v b="$bytes" 'BEGIN { printf "%.0f MiB/s", b / 1048576 / (e - s) }'))"

start=$(date +%s.%N)
down=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$proxy_port/bytes/$bytes")
end=$(date +%s.%N)
[ "$down" = "200 $bytes" ] || { echo "download: got $down" >&2; exit 1; }
echo "after $bytes bytes down: peak $(mib VmHWM) MiB, now $(mib VmRSS) MiB ($(awk -v s="$start" -v e="$end" -v b="$bytes" 'BEGIN { printf "%.0f MiB/s", b / 1048576 / (e - s) }'))"
