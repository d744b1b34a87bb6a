#!/usr/bin/env bash
# bench/iscsi.sh: 4 KiB random read and scattered write at queue depth 32,
# thinblk iscsi against tgt serving the same preallocated file, one after
# the other in one run. Prints IOPS and the thinblk/tgt ratio.
#
# Reads: libiscsi's iscsi-perf -m 32 -b 8 -r (random 4 KiB reads at 512-byte
# blocks) for $SECS seconds, the average it reports.
# Writes: qemu-img bench -w -d 32 -s 4096 through QEMU's libiscsi driver,
# with a 1 MiB+4 KiB stride so that successive writes land far apart.
#
# Needs root for tgtd; without tgtd only thinblk is measured.
# Env: THINBLK (binary; default: go build), SIZE (default 1G), SECS (10),
# WRITES (200000), GOMAXPROCS (passed to thinblk).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-1G}
SECS=${SECS:-10}
WRITES=${WRITES:-200000}
work=$(mktemp -d)
pids=()
tgtctl=$((3000 + RANDOM % 20000))
cleanup() {
	if [ -n "${tgt_up:-}" ]; then
		tgtadm -C "$tgtctl" --lld iscsi --op delete --mode target --tid 1 --force >/dev/null 2>&1 || true
		tgtadm -C "$tgtctl" --op delete --mode system >/dev/null 2>&1 || true
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${THINBLK:-}" ]; then
	go build -o "$work/thinblk" ./cmd/thinblk
	THINBLK=$work/thinblk
fi
img=$work/bench.img
fallocate -l "$SIZE" "$img"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# measure URL -> "READ_IOPS WRITE_IOPS"
measure() {
	local url=$1 read_iops write_iops t0 t1
	read_iops=$( (timeout -s INT "$SECS" iscsi-perf -m 32 -b 8 -r "$url" 2>&1 || true) |
		tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -1 | awk '{print $3}')
	t0=$(date +%s.%N)
	qemu-img bench -q -f raw -w -c "$WRITES" -d 32 -s 4096 -S 1052672 "$url" >/dev/null
	t1=$(date +%s.%N)
	write_iops=$(python3 -c "print(int($WRITES/($t1-$t0)))")
	echo "${read_iops:-0} $write_iops"
}

p1=$(port)
GOMAXPROCS=${GOMAXPROCS:-2} "$THINBLK" iscsi --portal "127.0.0.1:$p1" --lun "raw:$img" >"$work/thinblk.log" 2>&1 &
pids+=($!)
wait_port "$p1"
read -r tr tw < <(measure "iscsi://127.0.0.1:$p1/iqn.2026-01.io.thinblk:target/0")
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
pids=()
printf '%-8s %10s %10s\n' target randread randwrite
printf '%-8s %10d %10d\n' thinblk "$tr" "$tw"

if ! command -v tgtd >/dev/null || [ "$(id -u)" != 0 ]; then
	echo "tgt: not measured (needs tgtd and root)"
	exit 0
fi
p2=$(port)
tgtd -f -C "$tgtctl" --iscsi "portal=127.0.0.1:$p2" >"$work/tgtd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	tgtadm -C "$tgtctl" --lld iscsi --op new --mode target --tid 1 -T iqn.2026-01.io.thinblk:tgt 2>/dev/null && break
	sleep 0.1
done
tgt_up=1
tgtadm -C "$tgtctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$img"
tgtadm -C "$tgtctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
wait_port "$p2"
read -r gr gw < <(measure "iscsi://127.0.0.1:$p2/iqn.2026-01.io.thinblk:tgt/1")
printf '%-8s %10d %10d\n' tgt "$gr" "$gw"
python3 -c "print('ratio    %10.2f %10.2f' % ($tr/max($gr,1), $tw/max($gw,1)))"
