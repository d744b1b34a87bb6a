#!/usr/bin/env bash
# Installs the peer tools thinblk's interop tests use, from Debian's packages,
# when they are missing. Runs apt-get update once, and only when something is
# missing. Needs root to install; without root it only reports.
# With CI=true a peer that is still missing afterwards fails the script (exit 1),
# because CI must prove interop, not skip it.
set -euo pipefail

packages=(qemu-utils qemu-block-extra nbdkit libnbd-bin python3-libnbd libiscsi-bin fio tgt xfsprogs)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: all peer packages present"
  exit 0
fi

echo "install-peers: missing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "install-peers: installed ${missing[*]}"
  else
    echo "install-peers: apt-get failed" >&2
  fi
else
  echo "install-peers: not root (or no apt-get): cannot install" >&2
fi

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "install-peers: CI=true and still missing: ${still[*]}" >&2
    exit 1
  fi
  echo "install-peers: still missing (tests that need them will skip): ${still[*]}" >&2
fi
exit 0
