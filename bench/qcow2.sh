#!/usr/bin/env bash
# thinblk bench vs qemu-img bench on qcow2, same flags, same machine, one run.
# usage: bench/qcow2.sh THINBLK_BINARY [WORKDIR]     (RUNS=5 by default)
# Cases (depth 32, fresh 8 GiB qcow2 with 64 KiB clusters for each write run):
#   alloc4k  4 KiB writes, one per cluster (-S 64k): every write allocates
#   seq64k   64 KiB sequential writes (whole clusters)
#   read4k   4 KiB sequential reads of allocated data
# Prints: case, qemu-img median s, thinblk median s, ratio qemu/thinblk
# (above 1 means thinblk is faster). The two programs alternate order.
set -u
TB=${1:?usage: qcow2.sh THINBLK_BINARY [WORKDIR]}; TB=$(readlink -f "$TB")
W=${2:-${TMPDIR:-/tmp}/thinblk-bench-qcow2}; N=${RUNS:-5}
mkdir -p "$W" && cd "$W" || exit 2
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# run PROG CASE: prints the seconds qemu-img bench style output reports.
run() {
  local prog=$1 c=$2 img=$W/$1.qcow2 out
  case $c in
    alloc4k) rm -f "$img"; qemu-img create -q -f qcow2 "$img" 8G
             set -- -w -c 100000 -d 32 -s 4096 -S 65536 ;;
    seq64k)  rm -f "$img"; qemu-img create -q -f qcow2 "$img" 8G
             set -- -w -c 20000 -d 32 -s 65536 ;;
    read4k)  if [ ! -f "$W/read.qcow2" ]; then
               qemu-img create -q -f qcow2 "$W/read.qcow2" 2G
               qemu-io -f qcow2 -c 'write -P 0x5a 0 1G' "$W/read.qcow2" >/dev/null
             fi
             img=$W/read.qcow2; set -- -c 200000 -d 32 -s 4096 ;;
  esac
  sync
  if [ "$prog" = qemu ]; then out=$(qemu-img bench -f qcow2 "$@" "$img"); else out=$("$TB" bench -f qcow2 "$@" "$img"); fi
  echo "$out" | awk '/Run completed/ {print $4}'
}
printf '%-8s %10s %10s %8s\n' case qemu-img thinblk ratio
for c in ${CASES:-seq64k read4k alloc4k}; do
  q=(); t=()
  for i in $(seq "$N"); do
    if [ $((i % 2)) = 1 ]; then q+=("$(run qemu $c)"); t+=("$(run thinblk $c)")
    else t+=("$(run thinblk $c)"); q+=("$(run qemu $c)"); fi
  done
  qm=$(printf '%s\n' "${q[@]}" | median); tm=$(printf '%s\n' "${t[@]}" | median)
  printf '%-8s %10s %10s %8.2f\n' "$c" "$qm" "$tm" "$(echo "$qm / $tm" | bc -l)"
done
rm -f "$W"/qemu.qcow2 "$W"/thinblk.qcow2
