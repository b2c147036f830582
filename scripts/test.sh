#!/usr/bin/env bash
# The whole test suite, as CI runs it: what the build and the tests need installed, the
# backing services the tests use (a real redis-server on 127.0.0.1:16379, PostgreSQL on
# 127.0.0.1:15432 and a Kafka broker on 127.0.0.1:19092, through scripts/services.sh), one
# debug build of everything with the Kafka trait on, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# SQLite's headers, for the block store (GRDB uses the system library).
if ! dpkg -s libsqlite3-dev >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libsqlite3-dev
fi

# redis-server, redis-tools, PostgreSQL, librdkafka-dev and the Tansu broker, then the three
# services; stopped again however the tests end. Tests read RAMPART_TEST_REDIS_URL,
# RAMPART_TEST_POSTGRES_URL and RAMPART_TEST_KAFKA_BROKERS from the env file, which also puts a
# librdkafka of at least 2.2 first on LD_LIBRARY_PATH (Debian 12's 2.0.2 cannot talk to Tansu).
bash scripts/services.sh install
bash scripts/services.sh start all
trap 'bash scripts/services.sh stop' EXIT
. "$(bash scripts/services.sh env)"

swift build --build-tests --traits Kafka

# The suite takes a few minutes; a test that hangs must not hold CI until its own limit. Output
# is line-buffered so a killed run still shows every line, and on a timeout the tests that
# started and never ended are named.
limit="${RAMPART_TEST_TIME_LIMIT:-900}"
log="$(mktemp)"
set +e
timeout --kill-after=15 "$limit" stdbuf -oL -eL swift test --skip-build --traits Kafka 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "the tests did not finish within ${limit}s; started and never ended:"
  bash scripts/unfinished-tests.sh "$log"
fi
rm -f "$log"
exit "$status"
