// Package e2e proves thin provisioning end to end with a real Linux guest:
// a throw-away VM under QEMU (TCG; nested KVM does not work on the test
// machines) formats a disk served by thinblk, writes random data, deletes
// it and runs fstrim, and the test measures the host image (du and
// `thinblk map`) at each step.
//
// # What runs
//
// Each variant boots one guest against one server:
//
//   - NBD (`thinblk nbd`) with virtio-blk and with virtio-scsi + scsi-hd,
//     for raw and qcow2 images, --discard=unmap: the image grows by at least
//     90% of what the guest wrote and gives at least 90% of it back after
//     fstrim;
//   - iSCSI (`thinblk iscsi`) with virtio-scsi + scsi-block over QEMU's
//     iscsi:// driver, so the guest's SCSI commands reach thinblk's own
//     SCSI layer: the same space checks, plus the guest's sg_vpd (LBPU,
//     LBPWS, LBPRZ, ANC_SUP as configured), sg_get_lba_status (mapped after
//     the write, deallocated after fstrim) and sg_write_same --anchor
//     (anchored);
//   - the policy case: the default --discard=ignore, where fstrim succeeds
//     in the guest and the host keeps the space.
//
// qcow2 images pass `qemu-img check` after the server has stopped.
//
// # The guest
//
// The initramfs is built at test time in a temporary folder from the host:
// busybox (busybox-static), the modules of the newest kernel in /boot that
// has them (virtio, SCSI, ext4, loaded in `modprobe --show-depends` order),
// and the host's mke2fs, filefrag, fstrim and sg3-utils binaries with the
// libraries ldd names. Its /init is testdata/init.sh. The guest and the test
// talk over the serial console: the guest prints `@@STEP name` and waits for
// the host's "go" line, so the host measures while the guest is quiet.
//
// # Requirements and cleanup
//
// The test needs qemu-system-x86, linux-image-amd64, busybox-static,
// sg3-utils, e2fsprogs, kmod and qemu-block-extra; scripts/install-e2e.sh
// installs them (as root) and the test runs it when something is missing.
// Without them the test skips, and fails under CI=true.
//
// Cleanup: every QEMU run has its own deadline (capped 20 s before go
// test's -timeout, so the test fails cleanly rather than panicking past its
// cleanups); QEMU and servers are stopped by PID in t.Cleanup; all files
// live in one thinblk-e2e-* temporary folder that TestMain removes, also on
// SIGINT/SIGTERM after killing the recorded PIDs. On Linux the children get
// SIGKILL when the test process dies (Pdeathsig); a folder left by a killed
// run is removed by a later run once it is two hours old.
//
// The package has no non-test code besides this comment.
package e2e
