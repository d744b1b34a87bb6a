#!/bin/busybox sh
# /init of the thinblk end-to-end guest (PID 1 of a throw-away VM).
#
# It talks to the host test over the serial console (ttyS0, QEMU's stdio):
#   @@STEP name        a step is done; the guest then waits for a line "go"
#                      (repeating this line every 5 s until it comes)
#   @@OUT name         start of a captured command output
#   @@RC name code     end of that output and the command's exit code
#   @@KV key value     a value the host needs (the file's first LBA, ...)
#   @@FAIL message     the guest gave up; it powers off right after
#   @@DONE             every step ran; the guest powers off
#
# Parameters come from the kernel command line:
#   e2e.disk=vda|sda   the disk under test (no partition table)
#   e2e.mib=N          MiB of random data to write
#   e2e.scsi=1         the disk is a passed-through SCSI LU: print the
#                      provisioning VPD page and GET LBA STATUS results
#   e2e.anchor=1       also anchor two ranges with WRITE SAME(16) ANCHOR:
#                      one deallocated, one mapped
#
# Everything the host asserts on is measured on the host; the guest only
# drives the disk and prints what its own tools say.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
# The host's programs, by path: Debian's busybox-static shell runs its own
# applets (mke2fs, fstrim, ...) before looking at PATH.
H=/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

say() { echo "@@$*"; }

finish() {
	sync
	poweroff -f
	sleep 60
}

fail() {
	say "FAIL $*"
	finish
}

# step NAME: report NAME done and wait for the host's "go". The report is
# repeated every 5 s until the go comes, in case a kernel message garbled
# the line on the console; the host ignores the repeats.
step() {
	ans=
	n=0
	while :; do
		say "STEP $1"
		read -t 5 ans && break
		n=$((n + 1))
		[ $n -ge 120 ] && fail "no go from the host after step $1"
	done
	case $ans in
	*go*) ;;
	*) fail "no go from the host after step $1 (read '$ans')" ;;
	esac
}

# run NAME CMD...: run a command with its output captured under NAME.
run() {
	name=$1
	shift
	say "OUT $name"
	"$@" 2>&1
	rc=$?
	say "RC $name $rc"
	return $rc
}

disk=vda
mib=64
scsi=0
anchor=0
for w in $(cat /proc/cmdline); do
	case $w in
	e2e.disk=*) disk=${w#e2e.disk=} ;;
	e2e.mib=*) mib=${w#e2e.mib=} ;;
	e2e.scsi=*) scsi=${w#e2e.scsi=} ;;
	e2e.anchor=*) anchor=${w#e2e.anchor=} ;;
	esac
done

while read -r mod; do
	insmod "/lib/modules/$mod" 2>&1 || echo "insmod $mod failed (continuing)"
done </modules.list

i=0
while [ ! -b "/dev/$disk" ]; do
	i=$((i + 1))
	[ $i -gt 300 ] && fail "no /dev/$disk after 30 s: $(ls /sys/block)"
	sleep 0.1
done
dev=/dev/$disk
# The SCSI generic node of the disk, for the sg3-utils commands.
sg=$dev
for s in /sys/block/$disk/device/scsi_generic/*; do
	[ -e "$s" ] && sg=/dev/${s##*/}
done
lbs=$(cat /sys/block/$disk/queue/logical_block_size)
say "KV lbs $lbs"
say "KV discard_max_bytes $(cat /sys/block/$disk/queue/discard_max_bytes)"
# How the guest's sd driver discards (unmap, writesame_16, ...).
for f in /sys/block/$disk/device/scsi_disk/*/provisioning_mode; do
	[ -e "$f" ] && say "KV provisioning_mode $(cat "$f")"
done

if [ "$scsi" = 1 ]; then
	run vpd $H/sg_vpd -p lbpv "$sg" || fail "sg_vpd -p lbpv failed"
fi

# No discard at mkfs (it would trim the whole disk) and no lazy
# inode-table init thread writing behind the host's back.
run mkfs $H/mke2fs -t ext4 -F -q -b 4096 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "$dev" ||
	fail "mke2fs failed"
mount -t ext4 -o nodiscard,noinit_itable "$dev" /mnt || fail "mount failed"
sync
step formatted

run write dd if=/dev/urandom of=/mnt/data bs=1M count="$mib" conv=fsync || fail "dd failed"
sync
run filefrag $H/filefrag -v /mnt/data
# The first extent's physical block (4 KiB) and length, as LBAs.
ext=$($H/filefrag -v /mnt/data | awk '$1 == "0:" { p = $4; l = $6; sub(/\.\.$/, "", p); sub(/:$/, "", l); print p, l; exit }')
set -- $ext
[ -n "$1" ] || fail "filefrag printed no extent"
lba=$(($1 * 4096 / lbs))
say "KV lba $lba"
say "KV extent_bytes $(($2 * 4096))"
if [ "$scsi" = 1 ]; then
	run status_written $H/sg_get_lba_status --lba="$lba" "$sg"
fi
step written

rm /mnt/data
sync
run fstrim $H/fstrim -v /mnt || fail "fstrim failed"
sync
if [ "$scsi" = 1 ]; then
	run status_trimmed $H/sg_get_lba_status --lba="$lba" "$sg"
fi
umount /mnt || fail "umount failed"
sync
step trimmed

if [ "$anchor" = 1 ]; then
	num=$((1048576 / lbs))
	# A: the first MiB of the freed extent, deallocated by fstrim: zeros
	# that keep (reserve) storage.
	run anchor $H/sg_write_same --16 --unmap --anchor --lba="$lba" --num="$num" "$sg"
	run status_anchored $H/sg_get_lba_status --lba="$lba" "$sg"
	# B: the MiB after it, written again (mapped), then anchored.
	lba2=$((lba + num))
	say "KV lba2 $lba2"
	run write2 dd if=/dev/urandom of="$dev" bs=4096 seek=$((lba2 * lbs / 4096)) count=256 conv=fsync
	run status_mapped2 $H/sg_get_lba_status --lba="$lba2" "$sg"
	run anchor2 $H/sg_write_same --16 --unmap --anchor --lba="$lba2" --num="$num" "$sg"
	run status_anchored2 $H/sg_get_lba_status --lba="$lba2" "$sg"
	# SYNCHRONIZE CACHE, so the host sees the image's metadata on disk.
	run sync $H/sg_sync "$sg"
	step anchored
fi

say DONE
finish
