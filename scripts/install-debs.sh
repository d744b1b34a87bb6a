#!/usr/bin/env bash
# Installs Debian packages that tests need, when they are missing.
# usage: scripts/install-debs.sh LABEL PACKAGE...
# Runs apt-get update once, and only when something is missing. Needs root
# to install; without root it only reports. With CI=true a package still
# missing afterwards fails the script (exit 1): CI must prove interop, not
# skip it.
set -euo pipefail
label=${1:?usage: install-debs.sh LABEL PACKAGE...}; shift
packages=("$@")

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "$label: all packages present"
  exit 0
fi

echo "$label: missing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "$label: installed ${missing[*]}"
  else
    echo "$label: apt-get failed" >&2
  fi
else
  echo "$label: not root (or no apt-get): cannot install" >&2
fi

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "$label: CI=true and still missing: ${still[*]}" >&2
    exit 1
  fi
  echo "$label: still missing (tests that need them will skip): ${still[*]}" >&2
fi
exit 0
