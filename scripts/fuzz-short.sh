#!/usr/bin/env bash
# Runs every Go fuzz target for a short time (FUZZTIME, default 10s each).
# Longer by hand: FUZZTIME=10m bash scripts/fuzz-short.sh
set -euo pipefail
FUZZTIME="${FUZZTIME:-10s}"
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  pkg="./$(dirname "${f#./}")"
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz: $pkg $fn for $FUZZTIME"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done
