#!/usr/bin/env bash
# Installs the peer tools thinblk's interop tests use, from Debian's packages,
# when they are missing (see install-debs.sh for root, apt and CI=true).
exec "$(dirname "$0")/install-debs.sh" install-peers \
  qemu-utils qemu-block-extra nbdkit libnbd-bin python3-libnbd libiscsi-bin fio tgt xfsprogs
