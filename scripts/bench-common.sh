# Shared by the measuring scripts: a release build of rampart (or of $bench_product, when
# the caller sets it, with $bench_traits when set) and a work folder whose background processes stop, and which is
# removed, when the script exits.
# Sets: root, bin, rampart, work, pids (append the pid of every background process); defines
# the helpers below for starting servers and running wrk (callers set $connections, $duration).

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
product="${bench_product:-rampart}"
# $bench_traits (for example Kafka) builds with those package traits on.
echo "building $product (release${bench_traits:+, traits $bench_traits})..." >&2
swift build -c release ${bench_traits:+--traits "$bench_traits"} --product "$product" >&2
bin="$(swift build -c release --show-bin-path)"
rampart="$bin/rampart"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tmp"

# nginx wants its temp paths writable; run everything as the current user.
nginx_common() {
  cat <<EOF
pid $1.pid;
error_log $work/$(basename "$1").err warn;
events { worker_connections 4096; }
EOF
}

# Inside http {}: no access log, temp paths in the work folder, long keep-alive.
nginx_http_common() {
  cat <<EOF
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  keepalive_requests 1000000;
EOF
}

start() { # start NAME CPUS COMMAND...; remembers the pid in $started
  local name="$1" cpus="$2"; shift 2
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@" >"$work/$name.out" 2>&1 &
  else "$@" >"$work/$name.out" 2>&1 & fi
  started=$!
  pids+=("$started")
}

wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2; tail -n 5 "$work"/*.out "$work"/*.err >&2 || true; exit 1
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Peak resident memory of a process and its children, in MiB (VmHWM summed).
peak_rss() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    local kb; kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  awk -v kb="$total" 'BEGIN { printf "%.1f", kb / 1024 }'
}

# Milliseconds from a wrk latency such as 812.00us, 1.20ms or 1.01s.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

# CPU time (clock ticks) used so far by a process and its children.
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# run_wrk CPUS URL [PID [WRK ARGS...]] -> "rps p50ms p99ms cpu-us-per-request" (cpu of PID and
# its children; "-" without a PID). Fails on any non-2xx answer.
run_wrk() {
  local cpus="$1" url="$2" pid="${3:-}" out
  shift 2; [ $# -gt 0 ] && shift
  local extra=("$@")
  local pin=(); [ -n "$cpus" ] && pin=(taskset -c "$cpus")
  # A short warm-up fills the keep-alive pools; then the measured run.
  "${pin[@]}" wrk -t2 -c"$connections" -d2s "${extra[@]}" "$url" >/dev/null
  local before=0; [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  out=$("${pin[@]}" wrk -t2 -c"$connections" -d"$duration" --latency "${extra[@]}" "$url")
  local after=0; [ -n "$pid" ] && after=$(cpu_ticks "$pid")
  if echo "$out" | grep -q "Non-2xx"; then echo "$(basename "$0"): non-2xx answers from $url" >&2; echo "$out" >&2; exit 1; fi
  local rps p50 p99 requests cpu="-"
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  if [ -n "$pid" ]; then
    cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
  fi
  echo "$rps $p50 $p99 $cpu"
}


# rampart_config FILE [SHIELD-LINES] [ROUTE-LINES]: a Rampart configuration on $proxy_port and $admin_port
# with one pool at $upstream_port, no access log, its block and event database in $work, and
# SHIELD-LINES (indented YAML) under `shield:`, ROUTE-LINES (indented list items) under `routes:`
# (default: everything to the pool). wrk's one address is counted by the flood
# detector like any client but never blocked, however long the run.
rampart_config() {
  local shield="${2:-}" routes="${3:-}"
  [ -n "$shield" ] || shield="  flood: {minClientRate: 1000000000}"
  [ -n "$routes" ] || routes="  - {name: app, match: {pathPrefix: /}, pool: app}"
  cat > "$1" <<EOF
listeners:
  traffic: {address: "127.0.0.1:$proxy_port"}
  admin: {address: "127.0.0.1:$admin_port"}
log: {level: warning, accessLog: false}
pools:
  app:
    instances: ["http://127.0.0.1:$upstream_port"]
routes:
$routes
shield:
  blocks: {database: "${1%.yml}.sqlite"}
$shield
EOF
}
