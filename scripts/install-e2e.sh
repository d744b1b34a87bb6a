#!/usr/bin/env bash
# Installs what the end-to-end guest test (test/e2e) needs, from Debian's
# packages, when it is missing: QEMU for x86 (TCG), a kernel with its modules
# for the guest, busybox-static for the guest's userland, and the host tools
# copied into the guest (sg3-utils, e2fsprogs) plus kmod (modprobe) and
# qemu-block-extra (QEMU's iscsi:// driver). Runs apt-get update once, and
# only when something is missing. Needs root to install; without root it only
# reports. With CI=true a package still missing afterwards fails the script
# (exit 1): CI must boot the guest, not skip it.
set -euo pipefail

packages=(qemu-system-x86 linux-image-amd64 busybox-static sg3-utils e2fsprogs kmod qemu-block-extra qemu-utils)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-e2e: all e2e packages present"
  exit 0
fi

echo "install-e2e: missing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "install-e2e: installed ${missing[*]}"
  else
    echo "install-e2e: apt-get failed" >&2
  fi
else
  echo "install-e2e: not root (or no apt-get): cannot install" >&2
fi

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "install-e2e: CI=true and still missing: ${still[*]}" >&2
    exit 1
  fi
  echo "install-e2e: still missing (test/e2e will skip): ${still[*]}" >&2
fi
exit 0
