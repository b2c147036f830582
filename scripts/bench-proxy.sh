#!/usr/bin/env bash
# Proxy throughput and latency, side by side in one run on this machine:
#   wrk -> Rampart (release build) -> upstream
#   wrk -> nginx                   -> upstream
#   wrk -> HAProxy                 -> upstream
#   wrk ------------------------------> upstream   (direct, the ceiling)
#
# The upstream is an nginx instance answering every request with the same 1 KiB body, so the
# proxies, not the upstream, are what is measured. Each proxy keeps connections to it alive,
# adds X-Forwarded-For, and writes no access log. nginx runs twice: with the forwarding fields
# only (nginx), then doing to each request what Rampart does by default (nginx-like:
# X-Forwarded-Host, Forwarded, Via both ways, a request id both ways, traceparent). Rampart
# runs twice: configured like the others (threat inspection and flood counting off, as
# neither nginx nor HAProxy does them here), then with its shield at the defaults
# (rampart-shield). Every row's ratios are given to both nginx rows: rps/like and p99/like
# compare the same work. Like is compared with like: Rampart's
# event-loop threads equal nginx's worker processes and HAProxy's threads, first 1 then 2.
# With 1, every proxy is pinned to CPU 0 and wrk and the upstream to CPU 1; with 2 nothing
# is pinned.
#
# With --ceiling, also benchmarks/nio-proxy-ceiling: a minimal proxy written directly on Swift
# NIO, to show what the platform itself costs, once through NIO's HTTP/1 codecs (nio-codec)
# and once on bytes (nio-raw).
#
# Usage: scripts/bench-proxy.sh [--duration 10s] [--connections 64] [--threads "1 2"] [--ceiling]
# Needs: nginx, haproxy and wrk (apt-get install -y nginx haproxy wrk). Loopback only.
set -euo pipefail

duration=10s
connections=64
thread_counts="1 2"
ceiling=no
while [ $# -gt 0 ]; do
  case "$1" in
    --ceiling) ceiling=yes; shift ;;
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) thread_counts="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

for tool in nginx haproxy wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench-proxy: $tool is missing (apt-get install -y nginx haproxy wrk)" >&2; exit 2; }
done

# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"

if [ "$ceiling" = yes ]; then
  echo "building benchmarks/nio-proxy-ceiling (release)..." >&2
  swift build -c release --package-path benchmarks/nio-proxy-ceiling >&2
  ceiling_bin="$(swift build -c release --package-path benchmarks/nio-proxy-ceiling --show-bin-path)/nio-proxy-ceiling"
fi

upstream_port=18080
proxy_port=18081
admin_port=18082

body="$(head -c 1024 /dev/zero | tr '\0' 'x')"

cat > "$work/upstream.conf" <<EOF
worker_processes 1;
$(nginx_common "$work/upstream")
http {
$(nginx_http_common)
  server {
    listen 127.0.0.1:$upstream_port;
    location / { default_type text/plain; return 200 "$body"; }
  }
}
EOF

results="$work/results"
: > "$results"

for threads in $thread_counts; do
  if [ "$threads" = 1 ]; then proxy_cpus=0; load_cpus=1; else proxy_cpus=""; load_cpus=""; fi

  start upstream "$load_cpus" nginx -p "$work" -c "$work/upstream.conf" -g "daemon off;"
  upstream_pid=$started
  wait_port $upstream_port

  read -r rps p50 p99 cpu < <(run_wrk "$load_cpus" "http://127.0.0.1:$upstream_port/")
  echo "$threads direct $rps $p50 $p99 - -" >> "$results"

  # nginx as a proxy, twice: with the forwarding fields only (nginx), then doing to each
  # request what Rampart does by default (nginx-like): X-Forwarded-Host and Forwarded too,
  # Via both ways, the incoming X-Request-Id or a new one both ways, and traceparent
  # (continuing the caller's trace, else a new one; nginx's span id is a slice of its request
  # id, where Rampart draws one).
  for variant in plain like; do
    if [ "$variant" = plain ]; then label=nginx; extra=""; maps=""; else
      label=nginx-like
      maps='  map $http_x_request_id $rampart_rid { "" $request_id; default $http_x_request_id; }
  map $request_id $rampart_span { "~^(?<s>.{16})" $s; }
  map $http_traceparent $rampart_trace {
    "~^00-(?<tid>[0-9a-f]{32})-[0-9a-f]{16}-(?<fl>[0-9a-f]{2})$" "00-$tid-$rampart_span-$fl";
    default "00-$request_id-$rampart_span-01";
  }'
      extra='      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header Forwarded "for=$remote_addr;proto=$scheme;host=\"$http_host\"";
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id $rampart_rid;
      proxy_set_header traceparent $rampart_trace;
      add_header Via "1.1 nginx" always;
      add_header X-Request-Id $rampart_rid always;'
    fi
    cat > "$work/nginx-proxy.conf" <<EOF
worker_processes $threads;
$(nginx_common "$work/nginx-proxy")
http {
$(nginx_http_common)
$maps
  upstream app { server 127.0.0.1:$upstream_port; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
$extra
    }
  }
}
EOF
    start nginx "$proxy_cpus" nginx -p "$work" -c "$work/nginx-proxy.conf" -g "daemon off;"
    pid=$started; wait_port $proxy_port
    read -r rps p50 p99 cpu < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port/" "$pid")
    echo "$threads $label $rps $p50 $p99 $(peak_rss "$pid") $cpu" >> "$results"
    stop "$pid"
  done

  # HAProxy
  cat > "$work/haproxy.cfg" <<EOF
global
  nbthread $threads
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
  option forwardfor
frontend traffic
  bind 127.0.0.1:$proxy_port
  default_backend app
backend app
  server upstream 127.0.0.1:$upstream_port
EOF
  start haproxy "$proxy_cpus" haproxy -db -f "$work/haproxy.cfg"
  pid=$started; wait_port $proxy_port
  read -r rps p50 p99 cpu < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port/" "$pid")
  echo "$threads haproxy $rps $p50 $p99 $(peak_rss "$pid") $cpu" >> "$results"
  stop "$pid"

  # Rampart twice: configured as the other proxies are (no threat inspection, no flood
  # counting: nginx and HAProxy do neither here), then with its shield at the defaults.
  rampart_config "$work/rampart-like.yml" "  waf: {mode: \"off\"}
  flood: {enabled: false}"
  rampart_config "$work/rampart.yml"
  for variant in like defaults; do
    if [ "$variant" = like ]; then config="$work/rampart-like.yml"; label=rampart; else config="$work/rampart.yml"; label=rampart-shield; fi
    start rampart "$proxy_cpus" env RAMPART_THREADS="$threads" "$rampart" serve --config "$config"
    pid=$started; wait_port $proxy_port
    read -r rps p50 p99 cpu < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port/" "$pid")
    echo "$threads $label $rps $p50 $p99 $(peak_rss "$pid") $cpu" >> "$results"
    stop "$pid"
  done

  if [ "$ceiling" = yes ]; then
    for mode in codec raw; do
      start ceiling "$proxy_cpus" "$ceiling_bin" $proxy_port $upstream_port "$threads" "$mode"
      pid=$started; wait_port $proxy_port
      read -r rps p50 p99 cpu < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port/" "$pid")
      echo "$threads nio-$mode $rps $p50 $p99 $(peak_rss "$pid") $cpu" >> "$results"
      stop "$pid"
    done
  fi

  stop "$upstream_pid"
done

echo
echo "wrk -t2 -c$connections -d$duration, 1 KiB responses, keep-alive on both sides ($(nproc) cores, $(date -u +%Y-%m-%d))"
awk '
  { rows[NR] = $0; split($0, f, " ")
    if (f[2] == "nginx") { nginx_rps[f[1]] = f[3]; nginx_p99[f[1]] = f[5] }
    if (f[2] == "nginx-like") { like_rps[f[1]] = f[3]; like_p99[f[1]] = f[5] } }
  function ratio(value, base) { return base > 0 ? sprintf("%.2fx", value / base) : "-" }
  END {
    printf "%-8s %-15s %10s %8s %8s %8s %11s %10s %10s %10s %10s\n", "threads", "target", "req/s", "p50 ms", "p99 ms", "rss MiB", "cpu us/req",
      "rps/nginx", "p99/nginx", "rps/like", "p99/like"
    for (i = 1; i <= NR; i++) {
      split(rows[i], f, " ")
      printf "%-8s %-15s %10.0f %8.3f %8.3f %8s %11s %10s %10s %10s %10s\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7],
        ratio(f[3], nginx_rps[f[1]]), ratio(f[5], nginx_p99[f[1]]), ratio(f[3], like_rps[f[1]]), ratio(f[5], like_p99[f[1]])
    }
  }' "$results"
