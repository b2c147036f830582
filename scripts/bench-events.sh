#!/usr/bin/env bash
# Event delivery, measured in one run on this machine, each next to its anchor:
#   publish   what EventBus.publish costs on the request path (ns per event), how fast the
#             spool writes what was published, and publishDurably's latency for one event;
#   webhook   events per second through the spool to a webhook on loopback (nginx answering
#             204), next to wrk POSTing the same body size to the same nginx: the HTTP ceiling;
#   kafka     events per second through the spool to a Kafka topic (acks=all, idempotence),
#             next to librdkafka itself (confluent-kafka) producing as many messages of the
#             same size with the same settings: the client's ceiling.
#
# Usage: scripts/bench-events.sh [--events 50000]
# Needs: nginx, wrk, and the Kafka broker (scripts/services.sh start kafka). Loopback only.
set -euo pipefail

events=50000
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "bench-events: $tool is missing (apt-get install -y nginx wrk)" >&2; exit 2; }
done

bench_product=EventsBench
bench_traits=Kafka
# shellcheck source=bench-common.sh
source "$(dirname "$0")/bench-common.sh"
if [ -z "${RAMPART_TEST_KAFKA_BROKERS:-}" ]; then
  bash scripts/services.sh start kafka >&2
  . "$(bash scripts/services.sh env)"
fi
[ -n "${RAMPART_TEST_KAFKA_BROKERS:-}" ] || { echo "bench-events: no Kafka broker (scripts/services.sh start kafka)" >&2; exit 2; }

echo "== publish"
"$bin/EventsBench" publish 200000

echo "== webhook"
nginx_port=18095
cat > "$work/nginx.conf" <<NGINX
$(nginx_common "$work/nginx")
http {
$(nginx_http_common)
  server { listen 127.0.0.1:$nginx_port; location / { return 204; } }
}
NGINX
start nginx "" nginx -c "$work/nginx.conf" -g "daemon off; worker_processes 1;"
wait_port "$nginx_port"
"$bin/EventsBench" webhook "http://127.0.0.1:$nginx_port/hook" "$events"
# The anchor: the same nginx taking POSTs of an event's size as fast as wrk can send them.
body='{"data":{"quiz":"q123","score":42,"tags":["a","b"]},"id":"e123-0123abcd","partitionKey":"user-12","source":"bench","time":1795400000.123,"type":"bench.event"}'
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
connections=64 duration=5s
read -r rps _ _ _ < <(run_wrk "" "http://127.0.0.1:$nginx_port/hook" "" -s "$work/post.lua")
echo "nginx alone (wrk, 64 connections): $rps requests/s"

echo "== kafka"
"$bin/EventsBench" kafka "$RAMPART_TEST_KAFKA_BROKERS" "$events"
python3 - "$RAMPART_TEST_KAFKA_BROKERS" "$events" "$body" <<'PY'
import sys, time, uuid
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
brokers, count, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
topic = "bench-anchor-" + uuid.uuid4().hex[:8]
admin = AdminClient({"bootstrap.servers": brokers})
admin.create_topics([NewTopic(topic, 4)])[topic].result()
producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
done = [0]
def report(err, msg):
    if err is None: done[0] += 1
start = time.time()
for n in range(count):
    while True:
        try:
            producer.produce(topic, body, key=b"user-%d" % (n % 64), headers=[("rampart-event-id", b"x"), ("rampart-event-type", b"bench.event")], callback=report)
            break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)
producer.flush(60)
seconds = time.time() - start
print("librdkafka alone (confluent-kafka, acks=all, idempotence): %d of %d acknowledged in %.2f s, %.0f messages/s" % (done[0], count, seconds, done[0] / seconds))
PY
