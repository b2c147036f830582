#!/usr/bin/env bash
# The whole test suite, as CI runs it: what the build needs installed, one debug build of
# everything, then every test. Suites that need Redis, PostgreSQL or Kafka will start them
# here through scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# SQLite's headers, for the block store (GRDB uses the system library).
if ! dpkg -s libsqlite3-dev >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq libsqlite3-dev
fi

swift build --build-tests
swift test --skip-build
