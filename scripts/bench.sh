#!/usr/bin/env bash
# Builds thinblk and runs every benchmark script in bench/ (each compares
# thinblk with its peers in the same run and prints ratios). Scripts get the
# binary's path as their first argument and in $THINBLK. Benchmarks are not timed tests:
# they report, they do not fail on slowness.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/thinblk ./cmd/thinblk
tb=$(pwd)/bin/thinblk
shopt -s nullglob
scripts=(bench/*.sh)
if [ ${#scripts[@]} -eq 0 ]; then
  echo "bench: no scripts in bench/"
  exit 0
fi
status=0
for s in "${scripts[@]}"; do
  echo "== $s"
  THINBLK="$tb" bash "$s" "$tb" || { echo "bench: $s failed" >&2; status=1; }
done
exit $status
