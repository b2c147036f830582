# Shared by the measuring scripts: a release build of rampart and a work folder whose
# background processes stop, and which is removed, when the script exits.
# Sets: root, rampart, work, pids (append the pid of every background process).

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
echo "building rampart (release)..." >&2
swift build -c release --product rampart >&2
rampart="$(swift build -c release --show-bin-path)/rampart"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
