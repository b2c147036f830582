#!/usr/bin/env bash
# What the shield costs, in one run on this machine: requests per second for a benign GET and
# for a 1 KiB JSON POST through
#   Rampart with the shield off, and on (threat detection blocking, flood counting),
#   nginx as a plain proxy, and nginx with ModSecurity v3 and the OWASP CRS (the anchor),
# all in front of the same upstream (an nginx answering 1 KiB). Each proxy runs one event
# loop / worker pinned to CPU 0; wrk and the upstream share CPU 1. The figures that matter
# are the ratios on/off, each within its own proxy.
#
# The proxies take turns for --rounds rounds and each is reported at its best round: on a
# shared machine, noise only ever slows a run down, and one slow stretch falling on "off"
# or on "on" alone would make the ratio say nothing. Every round is printed too.
#
# Usage: scripts/bench-shield.sh [--duration 10s] [--connections 32] [--rounds 3] [--no-modsecurity]
# Needs: nginx and wrk; for the anchor libnginx-mod-http-modsecurity and modsecurity-crs
# (apt-get install -y nginx wrk libnginx-mod-http-modsecurity modsecurity-crs). Loopback only.
set -euo pipefail

duration=10s
rounds=3
connections=32
modsecurity=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --no-modsecurity) modsecurity=no; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in nginx wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench-shield: $tool is missing (apt-get install -y nginx wrk)" >&2; exit 2; }
done
module=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
if [ "$modsecurity" = yes ] && { [ ! -f "$module" ] || [ ! -f /etc/modsecurity/crs/crs-setup.conf ]; }; then
  echo "bench-shield: ModSecurity for nginx or the CRS is missing (apt-get install -y libnginx-mod-http-modsecurity modsecurity-crs), or pass --no-modsecurity" >&2
  exit 2
fi

# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"

upstream_port=18090
proxy_port=18091
admin_port=18092
proxy_cpus=0
load_cpus=1

# The requests: what a quiz app's browser sends, nothing that should be refused.
get_path="/api/quizzes?search=capital+of+norway&page=2&sort=recent&lang=nb"
get_headers=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
             -H "Accept: application/json" -H "Accept-Language: nb-NO,nb;q=0.9,en;q=0.8"
             -H "Cookie: session=6f1c2a9e0b7d4c3f8a1e5d2b9c0f7a6e; theme=dark")
post_json='{"title":"Norwegian geography, part 2","description":"Ten questions about fjords, cities and mountains. Good for the class on Friday; the answers are explained after each round.","visibility":"class","tags":["geography","norway","fjords"],"questions":[{"text":"What is the capital of Norway?","options":["Oslo","Bergen","Trondheim","Tromsø"],"answer":0,"points":1},{"text":"Which fjord is the longest in Norway?","options":["Sognefjorden","Hardangerfjorden","Geirangerfjorden"],"answer":0,"points":2},{"text":"How high is Galdhøpiggen, in metres?","options":["2469","1987","3012"],"answer":0,"points":2},{"text":"Which city is called the gateway to the Arctic?","options":["Tromsø","Bodø","Alta"],"answer":0,"points":1}],"settings":{"timeLimitSeconds":30,"shuffle":true,"showAnswers":"after"}}'
# Padded to exactly 1 KiB with a note field (`,"note":""` is 11 bytes).
pad=$((1024 - $(printf %s "$post_json" | wc -c) - 11))
post_json="${post_json%\}},\"note\":\"$(printf '%*s' "$pad" '' | tr ' ' 'n')\"}"
cat > "$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
wrk.body = [[$post_json]]
EOF

# The upstream reads each request body before answering, as an application does (nginx's
# `return` alone would answer first): a buffering proxy in front of the answering server.
cat > "$work/upstream.conf" <<EOF
worker_processes 1;
$(nginx_common "$work/upstream")
http {
$(nginx_http_common)
  upstream answer { server 127.0.0.1:$((upstream_port + 5)); keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$upstream_port;
    client_max_body_size 1m;
    location / { proxy_pass http://answer; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$((upstream_port + 5));
    location / { default_type application/json; return 200 '{"ok":true,"padding":"$(head -c 1000 /dev/zero | tr '\0' 'x')"}'; }
  }
}
EOF

results="$work/results"
: > "$results"

# measure LABEL PID: both requests through the proxy on $proxy_port.
measure() {
  local label="$1" pid="$2" get post
  read -r get _ < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port$get_path" "$pid" "${get_headers[@]}")
  read -r post _ < <(run_wrk "$load_cpus" "http://127.0.0.1:$proxy_port/api/quizzes" "$pid" -s "$work/post.lua")
  echo "$label $get $post" >> "$results"
}

start upstream "$load_cpus" nginx -p "$work" -c "$work/upstream.conf" -g "daemon off;"
upstream_pid=$started
wait_port $upstream_port

nginx_proxy() { # nginx_proxy NAME EXTRA-MAIN EXTRA-SERVER
  cat > "$work/$1.conf" <<EOF
$2
worker_processes 1;
$(nginx_common "$work/$1")
http {
$(nginx_http_common)
  upstream app { server 127.0.0.1:$upstream_port; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$proxy_port;
    client_max_body_size 1m;
    $3
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
  start "$1" "$proxy_cpus" nginx -p "$work" -c "$work/$1.conf" -g "daemon off;"
  pid=$started
  wait_port $proxy_port
}

if [ "$modsecurity" = yes ]; then
  # ModSecurity v3 with the CRS at its defaults (paranoia level 1, blocking, anomaly threshold
  # 5), request bodies inspected (JSON through the JSON body processor), no audit log.
  cat > "$work/modsecurity-rules.conf" <<EOF
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 1048576
SecRequestBodyNoFilesLimit 131072
SecResponseBodyAccess Off
SecAuditEngine Off
SecTmpDir $work/tmp
SecDataDir $work/tmp
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
Include /etc/modsecurity/crs/crs-setup.conf
Include /etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf
Include /usr/share/modsecurity-crs/rules/*.conf
Include /etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf
EOF
fi

rampart_with() { # rampart_with NAME SHIELD-YAML
  rampart_config "$work/$1.yml" "$2"
  start "$1" "$proxy_cpus" env RAMPART_THREADS=1 "$rampart" serve --config "$work/$1.yml"
  pid=$started
  wait_port $proxy_port
}

for round in $(seq "$rounds"); do
  nginx_proxy nginx "" ""
  measure "nginx" "$pid"
  stop "$pid"

  if [ "$modsecurity" = yes ]; then
    nginx_proxy modsecurity "load_module $module;" "modsecurity on; modsecurity_rules_file $work/modsecurity-rules.conf;"
    measure "nginx+ModSecurity" "$pid"
    stop "$pid"
  fi

  rampart_with rampart-off "  waf: {mode: off}
  flood: {enabled: false}"
  measure "Rampart,shield-off" "$pid"
  stop "$pid"

  # On: blocking detection at its defaults; flood counting per client on (rampart_config's
  # default shield lines).
  rampart_with rampart-on ""
  measure "Rampart,shield-on" "$pid"
  stop "$pid"
done

stop "$upstream_pid"

echo
echo "every round (req/s, GET then POST):"
awk '{ printf "  %-20s %8.0f %8.0f\n", $1, $2, $3 }' "$results"
echo
echo "wrk -t2 -c$connections -d$duration, best of $rounds interleaved rounds, one proxy worker pinned to CPU 0 ($(nproc) cores, $(date -u +%Y-%m-%d))"
awk '
  !($1 in get) { order[++n] = $1 }
  { if ($2 > get[$1]) get[$1] = $2; if ($3 > post[$1]) post[$1] = $3 }
  END {
    printf "%-20s %12s %12s %14s %14s\n", "proxy", "GET req/s", "POST req/s", "GET kept", "POST kept"
    for (i = 1; i <= n; i++) {
      l = order[i]
      ref = (l == "nginx+ModSecurity") ? "nginx" : (l == "Rampart,shield-on") ? "Rampart,shield-off" : ""
      kg = (ref in get) ? sprintf("%.1f%%", 100 * get[l] / get[ref]) : "-"
      kp = (ref in post) ? sprintf("%.1f%%", 100 * post[l] / post[ref]) : "-"
      printf "%-20s %12.0f %12.0f %14s %14s\n", l, get[l], post[l], kg, kp
    }
  }' "$results"
