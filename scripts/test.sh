#!/usr/bin/env bash
# The whole test suite, as CI runs it: one debug build of everything, then every test.
# Issue 2's tests need no external service; later suites that need Redis, PostgreSQL or
# Kafka will start them here through scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build
