#!/usr/bin/env bash
# Names the tests a `swift test` log shows as started but never passed or failed (a hang).
set -euo pipefail
awk '
  /^◇ Test (case|run) / { next }
  /^◇ Test .* started\.$/ { name = $0; sub(/^◇ Test /, "", name); sub(/ started\.$/, "", name); open[name] = 1 }
  /^(✔|✘) Test .* (passed|failed)/ {
    name = $0; sub(/^(✔|✘) Test /, "", name); sub(/ (with [0-9]+ test cases? )?(passed|failed).*$/, "", name); delete open[name]
  }
  END { for (name in open) print "  " name }
' "$1"
