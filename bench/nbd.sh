#!/usr/bin/env bash
# NBD server benchmark: thinblk nbd vs qemu-nbd vs nbdkit file, same images,
# same run. usage: bench/nbd.sh THINBLK_BINARY [WORKDIR]
# Env: RUNTIME (fio seconds per case, default 6), RUNS (nbdcopy runs, default 3),
#      REPS (fio runs per server and case, default 3; the median is shown),
#      TB_ARGS (extra thinblk nbd flags, e.g. "--gomaxprocs=1 --workers=2").
# The servers take turns in a rotating order (these VMs are noisy and a
# server that always runs first or last would be favoured), and every
# randwrite run gets a freshly preallocated image (see PERF-NOTES: 4k
# writes into pages another run left behind are slower).
# Prints IOPS or seconds per server and thinblk's ratio to each peer
# (IOPS: higher is better; seconds: lower is better).
set -u
TB=${1:?usage: nbd.sh THINBLK_BINARY [WORKDIR]}; TB=$(readlink -f "$TB")
W=${2:-${TMPDIR:-/tmp}/thinblk-nbd-bench}; RT=${RUNTIME:-6}; N=${RUNS:-3}; REPS=${REPS:-3}; TBA=${TB_ARGS:-}
mkdir -p "$W" && cd "$W" || exit 2
for t in qemu-nbd nbdkit nbdcopy fio qemu-img bc; do command -v $t >/dev/null || { echo "missing $t"; exit 2; }; done
# A fully allocated raw image for IOPS (fresh: see PERF-NOTES on ext4 after
# sequential reads), and a sparse-ish data image in raw and qcow2 for copies.
fresh() { rm -f full.raw; qemu-img create -q -f raw -o preallocation=full full.raw 1G; }
fresh
if [ ! -f data.raw ]; then
  qemu-img create -q -f raw data.raw 2G
  qemu-io -f raw -c 'write -P 0x5a 0 512M' -c 'write -P 0x33 1G 256M' data.raw >/dev/null
  qemu-img convert -f raw -O qcow2 data.raw data.qcow2
fi

start() { # start NAME CMD... ; sets SOCK PID
  SOCK=$W/$1.sock; rm -f "$SOCK"; shift
  "$@" >/dev/null 2>&1 & PID=$!
  for _ in $(seq 100); do [ -S "$SOCK" ] && return 0; sleep 0.05; done
  echo "server $* did not start" >&2; return 1
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
server() { # server KIND IMG FMT RO -> runs start
  local ro=""; [ "$4" = ro ] && ro=-r
  case $1 in
    thinblk) start tb "$TB" nbd $TBA -t $ro -f "$3" -k "$W/tb.sock" "$2" ;;
    qemu-nbd) start qn qemu-nbd -t $ro -f "$3" -k "$W/qn.sock" "$2" ;;
    nbdkit) start nk nbdkit -f $ro -U "$W/nk.sock" file "$2" ;;
  esac
}
fio_case() { # fio_case RW BS -> IOPS (read or write)
  fio --name=b --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" --rw="$1" --bs="$2" --iodepth=32 \
      --time_based --runtime="$RT" --output-format=terse 2>/dev/null | grep '^3;' | awk -F';' -v rw="$1" \
      '{print (rw ~ /read/) ? $8 : $49}'
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
order() { # order REP -> the three servers rotated by REP
  local s=(thinblk qemu-nbd nbdkit) i
  for i in 0 1 2; do echo "${s[$(( (i + $1) % 3 ))]}"; done
}
copy_case() { # median seconds of nbdcopy SOCK -> null
  for _ in $(seq "$N"); do
    s=$(date +%s.%N); nbdcopy "nbd+unix:///?socket=$SOCK" null: >/dev/null 2>&1; e=$(date +%s.%N)
    echo "$e - $s" | bc -l
  done | median
}
ratio() { echo "scale=2; ${1:-0} / ${2:-1}" | bc -l; }
echo "# $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) RUNTIME=$RT REPS=$REPS RUNS=$N TB_ARGS='$TBA'"
printf '%-30s %10s %10s %10s %8s %8s\n' case thinblk qemu-nbd nbdkit "/qemu" "/nbdkit"
for c in "randread 4k" "randwrite 4k" "read 1M"; do
  set -- $c; declare -A r=() all=()
  for rep in $(seq "$REPS"); do
    for s in $(order "$rep"); do
      ro=rw; [ "$1" != randwrite ] && ro=ro
      [ "$1" = randwrite ] && fresh
      server $s full.raw raw $ro && { all[$s]+="$(fio_case "$1" "$2") "; stop; }
    done
  done
  for s in "${!all[@]}"; do r[$s]=$(echo ${all[$s]} | tr ' ' '\n' | median); done
  printf '%-30s %10s %10s %10s %8s %8s   (IOPS, higher is better)\n' "fio nbd $2 $1 qd32 raw" "${r[thinblk]:-}" "${r[qemu-nbd]:-}" "${r[nbdkit]:-}" \
    "$(ratio "${r[thinblk]:-0}" "${r[qemu-nbd]:-1}")" "$(ratio "${r[thinblk]:-0}" "${r[nbdkit]:-1}")"
done
k=0
for img in data.raw:raw data.qcow2:qcow2; do
  f=${img%%:*}; fmt=${img##*:}; declare -A r=()
  k=$((k + 1)); for s in $(order "$k"); do
    [ $s = nbdkit ] && [ $fmt = qcow2 ] && { r[$s]=""; continue; }
    server $s "$f" "$fmt" ro && { r[$s]=$(copy_case); stop; }
  done
  nk=${r[nbdkit]:-}; nkr=-; [ -n "$nk" ] && { nkr=$(ratio "${r[thinblk]:-0}" "$nk"); nk=$(printf '%.3f' "$nk"); }
  printf '%-30s %10.3f %10.3f %10s %8s %8s   (seconds, lower is better)\n' "nbdcopy 2G $fmt ->null" "${r[thinblk]:-0}" "${r[qemu-nbd]:-1}" "${nk:--}" \
    "$(ratio "${r[thinblk]:-0}" "${r[qemu-nbd]:-1}")" "$nkr"
done
