#!/usr/bin/env bash
# Convert benchmark (issue 4): thinblk against qemu-img on the same images in
# the same run, alternating which goes first, medians over RUNS runs.
#
# usage: bench/convert.sh [THINBLK_BINARY] [WORKDIR]
#   THINBLK_BINARY defaults to a fresh `go build` of ./cmd/thinblk.
#   RUNS (default 5), CASES (default "raw-qcow2 qcow2-raw flatten map
#   raw-raw") select what runs; KEEP=1 keeps the outputs.
#
# Workload: an 8 GiB sparse raw image with 1 GiB of random data in
# 4 KiB-4 MiB extents and 256 MiB of written zeros (internal/workload, seed
# 1); its qcow2 conversion (made by qemu-img); a qcow2 overlay over it with
# 256 MiB of new data, a zeroed range and a discarded range.
#
# Prints per case: median wall seconds (qemu-img, thinblk), the ratio
# thinblk/qemu-img (goal <= 0.8), peak RSS in MiB of each (goal <= 64 MiB for
# thinblk), the output's allocation in KiB (du, after sync) of each, then the ratio of
# the minimum wall times and the median user+sys CPU seconds of each with
# their ratio: on a loaded machine wall times are bimodal, and CPU time is
# the load-independent signal. The load average is printed at the start and
# end. Every thinblk
# output is checked with qemu-img compare (and qemu-img check for qcow2).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
TB=${1:-}
W=${2:-${TMPDIR:-/tmp}/thinblk-bench-convert}
N=${RUNS:-5}
CASES=${CASES:-"raw-qcow2 qcow2-raw flatten map raw-raw"}
mkdir -p "$W" || exit 2
if [ -z "$TB" ]; then
  TB=$W/thinblk
  (cd "$root" && go build -o "$TB" ./cmd/thinblk) || exit 2
fi
TB=$(readlink -f "$TB")
cd "$W" || exit 2

if [ ! -f w1.raw ] || [ ! -f top.qcow2 ]; then
  echo "building the workload in $W ..." >&2
  (cd "$root" && go run ./internal/workload/mkimage "$W/w1.raw" 8G 1G 256M 1) || exit 2
  qemu-img convert -f raw -O qcow2 w1.raw base.qcow2 || exit 2
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 || exit 2
  qemu-io -f qcow2 -c 'write -P 0x5c 1G 128M' -c 'write -z 2G 64M' -c 'discard 3G 64M' \
    -c 'write -P 0x17 5G 128M' top.qcow2 >/dev/null || exit 2
fi

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# run1 CMD: runs CMD, prints "SECONDS RSS_KIB" (wall time and peak RSS).
run1() {
  /usr/bin/time -o time.out -f '%e %M' "$@" >/dev/null 2>&1
  tail -1 time.out
}
# timed CMD: runs CMD (a shell command line), prints "WALL CPU" (seconds;
# CPU is user+sys). bash's time keyword measures the command's own
# processes, without the start-up of a wrapper shell or timer (which adds
# milliseconds to both programs and matters for the 10-20 ms map case).
timed() {
  local TIMEFORMAT='%R %U %S' out
  out=$( { time eval "$1" >/dev/null 2>&1; } 2>&1 )
  echo "$out" | tail -1 | awk '{print $1, $2 + $3}'
}

# pair NAME OUT_Q OUT_T 'QEMU CMD' 'THINBLK CMD' CHECK_SRC
pair() {
  local name=$1 oq=$2 ot=$3 cq=$4 ct=$5 src=$6 i
  local tq=() tt=() cq_=() ct_=() r
  eval "$cq" >/dev/null 2>&1; eval "$ct" >/dev/null 2>&1   # warm-up
  for i in $(seq "$N"); do
    for who in $( [ $((i%2)) = 1 ] && echo "q t" || echo "t q"); do
      rm -f o.*; sync
      if [ "$who" = q ]; then
        r=$(timed "$cq"); tq+=("${r% *}"); cq_+=("${r#* }")
      else
        r=$(timed "$ct"); tt+=("${r% *}"); ct_+=("${r#* }")
      fi
    done
  done
  # one more run of each under /usr/bin/time for peak RSS, keeping outputs
  rm -f o.*; sync
  local mq mt
  mq=$(run1 bash -c "exec $cq" | awk '{print $2}')
  mt=$(run1 bash -c "exec $ct" | awk '{print $2}')
  # allocation once written back: ext4 settles extents at writeback, so du
  # right after the run can differ from what stays on disk
  sync
  local aq=- at=-
  [ -n "$oq" ] && [ -f "$oq" ] && aq=$(du -k "$oq" | cut -f1)
  [ -n "$ot" ] && [ -f "$ot" ] && at=$(du -k "$ot" | cut -f1)
  local q t q0 t0 uq ut
  q=$(printf '%s\n' "${tq[@]}" | median); t=$(printf '%s\n' "${tt[@]}" | median)
  q0=$(printf '%s\n' "${tq[@]}" | sort -n | head -1); t0=$(printf '%s\n' "${tt[@]}" | sort -n | head -1)
  uq=$(printf '%s\n' "${cq_[@]}" | median); ut=$(printf '%s\n' "${ct_[@]}" | median)
  printf '%-26s %8.3f %8.3f %6.2f %7.1f %7.1f %9s %9s %6.2f %6.2f %6.2f %6.2f\n' "$name" "$q" "$t" "$(echo "$t / $q" | bc -l)" \
    "$(echo "$mq / 1024" | bc -l)" "$(echo "$mt / 1024" | bc -l)" "$aq" "$at" "$(echo "$t0 / $q0" | bc -l)" \
    "$uq" "$ut" "$(echo "$ut / ($uq + 0.005)" | bc -l)"
  if [ -n "$src" ] && [ -n "$ot" ]; then
    qemu-img compare -q "$src" "$ot" || echo "  CONTENT DIFFERS: $ot"
    case $ot in *.qcow2) qemu-img check -q "$ot" >/dev/null 2>&1 || echo "  QEMU-IMG CHECK FAILED: $ot";; esac
    if [ "$at" != - ] && [ "$aq" != - ] && [ "$at" -gt "$aq" ]; then echo "  ALLOCATION LARGER THAN QEMU-IMG'S"; fi
  fi
  [ "${KEEP:-0}" = 1 ] || rm -f o.*
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s %8s %8s %6s %7s %7s %9s %9s %6s %6s %6s %6s\n' case qemu-s thinblk-s ratio qemuMiB tbMiB qemu-KiB tb-KiB minrat qcpu tcpu cpurat
for c in $CASES; do
  case $c in
  raw-qcow2) pair "convert raw->qcow2" o.q.qcow2 o.t.qcow2 \
      "qemu-img convert -f raw -O qcow2 w1.raw o.q.qcow2" "$TB convert -f raw -O qcow2 w1.raw o.t.qcow2" w1.raw ;;
  qcow2-raw) pair "convert qcow2->raw" o.q.raw o.t.raw \
      "qemu-img convert -f qcow2 -O raw base.qcow2 o.q.raw" "$TB convert -f qcow2 -O raw base.qcow2 o.t.raw" base.qcow2 ;;
  flatten) pair "convert overlay->qcow2" o.qf.qcow2 o.tf.qcow2 \
      "qemu-img convert -f qcow2 -O qcow2 top.qcow2 o.qf.qcow2" "$TB convert -f qcow2 -O qcow2 top.qcow2 o.tf.qcow2" top.qcow2 ;;
  map) pair "map --output=json overlay" "" "" \
      "qemu-img map -f qcow2 --output=json top.qcow2" "$TB map -f qcow2 --output=json top.qcow2" ""
      diff <(qemu-img map -f qcow2 --output=json top.qcow2) <("$TB" map -f qcow2 --output=json top.qcow2) >/dev/null \
        || echo "  MAP OUTPUT DIFFERS FROM QEMU-IMG'S" ;;
  raw-raw) pair "convert raw->raw" o.q.raw o.t.raw \
      "qemu-img convert -f raw -O raw w1.raw o.q.raw" "$TB convert -f raw -O raw w1.raw o.t.raw" w1.raw ;;
  *) echo "unknown case $c" >&2 ;;
  esac
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
