#!/usr/bin/env bash
# Runs every Go fuzz target for a short time (FUZZTIME, default 10s each).
# Longer by hand: FUZZTIME=10m bash scripts/fuzz-short.sh
#
# Go's fuzzing coordinator can report a bare "context deadline exceeded" as a
# failure when -fuzztime runs out: it wakes on the parent context's Done
# channel before the child context it compares against has been cancelled
# (internal/fuzz CoordinateFuzzing, stop()). No input failed then, and none is
# written to testdata. Such a run is repeated once; any other failure, or a
# second one, fails the script.
set -euo pipefail
FUZZTIME="${FUZZTIME:-10s}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run_target() { # pkg fn
  go test -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" "$1" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

engine_deadline_only() {
  grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"
}

grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  pkg="./$(dirname "${f#./}")"
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz: $pkg $fn for $FUZZTIME"
    if run_target "$pkg" "$fn"; then continue; fi
    if engine_deadline_only; then
      echo "fuzz: $pkg $fn: the fuzzing engine reported its own deadline, no failing input; running it again"
      run_target "$pkg" "$fn" && continue
    fi
    exit 1
  done
done
