#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 60s).
# Targets are discovered with `go test -list '^Fuzz'` per package.
# usage: scripts/fuzz.sh [PACKAGE_PATTERN...]   (default ./...)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
failed=0
found=0
for pkg in $(go list "${pkgs[@]}"); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    found=$((found + 1))
    echo "== $pkg $t ($fuzztime)"
    # Minimizing large seed images (qcow2, vmdk) stalls Go's engine for
    # minutes; FUZZMINTIME=10s turns minimization back on.
    if ! go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINTIME:-0}" "$pkg"; then
      echo "FAIL: $pkg $t" >&2
      failed=1
    fi
  done
done
echo "fuzz: $found targets run"
exit $failed
