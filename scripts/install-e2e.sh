#!/usr/bin/env bash
# Installs what the end-to-end guest test (test/e2e) needs, from Debian's
# packages, when it is missing: QEMU for x86 (TCG), a kernel with its modules
# for the guest, busybox-static for the guest's userland, and the host tools
# copied into the guest (sg3-utils, e2fsprogs) plus kmod (modprobe) and
# qemu-block-extra (QEMU's iscsi:// driver), and cpio (to check the test's
# initramfs writer). See install-debs.sh for root,
# apt and CI=true.
exec "$(dirname "$0")/install-debs.sh" install-e2e \
  qemu-system-x86 linux-image-amd64 busybox-static sg3-utils e2fsprogs kmod cpio qemu-block-extra qemu-utils
