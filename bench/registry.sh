#!/usr/bin/env bash
# bench/registry.sh - berth-registry beside Debian's docker-registry (2.8), same run, loopback.
#
# Usage: bench/registry.sh [-s SMALL_COUNT] [-l LARGE_COUNT] [-c CONCURRENCY] [-r ROUNDS] [-m MEM_UPLOADS]
#                          [-C ALGORITHM]
#   -s  number of 1 MiB blobs pushed then pulled        (default 400)
#   -l  number of 100 MiB blobs pushed then pulled      (default 12)
#   -c  concurrency of those phases                     (default 16 for 1 MiB, 4 for 100 MiB)
#   -r  pull rounds, alternating the two registries     (default 5; the median is shown)
#   -m  concurrent uploads in the memory phase          (default 50, of 20 MiB each)
#   -C  the host's TCP congestion control for the run, put back on exit (default: as is).
#       Loopback figures depend on it: berth-registry keeps its loopback connections off
#       BBR's pacing, docker-registry and the load generator follow the host.
# Env: CARGO_TARGET_DIR (default target), DOCKER_REGISTRY (/usr/bin/docker-registry)
#
# Builds berth-registry and the load generator (crates/registry/examples/loadgen.rs) in
# release mode, starts both registries on 127.0.0.1 with fresh roots in a temp dir, and prints
# blobs/s, MB/s and peak RSS for each, with berth/docker ratios, and the CPU seconds per GB
# each server and the (shared) client spent, which shows where a phase's limit is on a
# loaded machine. Pulls repeat in alternating rounds so both registries see the same
# background load; the median round is shown. Everything it starts is stopped on exit.
set -euo pipefail

SMALL=400 LARGE=12 CONC="" MEMN=50 ROUNDS=5 CC=""
while getopts "s:l:c:r:m:C:h" o; do
  case $o in
    s) SMALL=$OPTARG ;; l) LARGE=$OPTARG ;; c) CONC=$OPTARG ;; r) ROUNDS=$OPTARG ;; m) MEMN=$OPTARG ;;
    C) CC=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 0 ;;
  esac
done
HERE=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
DREG=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
[ -x "$DREG" ] || { echo "needs $DREG (apt-get install docker-registry)" >&2; exit 1; }

(cd "$HERE" && cargo build --release -q -p berth-registry --bin berth-registry --example loadgen)
BERTH=$CARGO_TARGET_DIR/release/berth-registry
LOADGEN=$CARGO_TARGET_DIR/release/examples/loadgen

WORK=$(mktemp -d /tmp/berth-registry-bench.XXXXXX)
PIDS=()
CC_SYSCTL=/proc/sys/net/ipv4/tcp_congestion_control
HOST_CC=$(cat "$CC_SYSCTL")
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
  [ "$(cat "$CC_SYSCTL")" = "$HOST_CC" ] || echo "$HOST_CC" >"$CC_SYSCTL"
}
trap cleanup EXIT
[ -z "$CC" ] || echo "$CC" >"$CC_SYSCTL"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -fs "http://$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "registry at $1 did not start" >&2; exit 1; }
rss_kb() { awk "/^$2:/{print \$2}" "/proc/$1/status"; }

BPORT=$(free_port)
mkdir -p "$WORK/berth" "$WORK/docker"
RUST_LOG=warn "$BERTH" --listen "127.0.0.1:$BPORT" --root "$WORK/berth" >"$WORK/berth.log" 2>&1 &
BPID=$!; PIDS+=("$BPID")
DPORT=$(free_port)
cat >"$WORK/docker.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/docker
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$DPORT
YML
"$DREG" serve "$WORK/docker.yml" >"$WORK/docker.log" 2>&1 &
DPID=$!; PIDS+=("$DPID")
wait_up "127.0.0.1:$BPORT"; wait_up "127.0.0.1:$DPORT"

declare -A RES
TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/" <<<"$2"; }
median() { tr ' ' '\n' <<<"$*" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# One loadgen run; records MB/s, blobs/s and CPU s/GB of server and client under name,size,op.
one() { # name port pid size count conc op
  local name=$1 port=$2 pid=$3 size=$4 count=$5 conc=$6 op=$7 line c0 c1 gb
  c0=$(cpu_ticks "$pid")
  line=$(LOADGEN_SEED=$SEED "$LOADGEN" "http://127.0.0.1:$port" "bench/s$size" "$size" "$count" "$conc" "$op")
  c1=$(cpu_ticks "$pid")
  gb=$(awk -v s="$size" -v n="$count" 'BEGIN{print s*n/1e9}')
  RES[$name,$size,$op,mbs]+="$(field mb_per_s "$line") "
  RES[$name,$size,$op,bps]+="$(field blobs_per_s "$line") "
  RES[$name,$size,$op,scpu]+="$(awk -v t=$((c1-c0)) -v k="$TCK" -v g="$gb" 'BEGIN{printf "%.2f", t/k/g}') "
  RES[$name,$size,$op,ccpu]+="$(awk -v c="$(field client_cpu_s "$line")" -v g="$gb" 'BEGIN{printf "%.2f", c/g}') "
}
phase() { # size count conc
  local size=$1 count=$2 conc=$3 r
  SEED=$RANDOM$RANDOM
  one berth "$BPORT" "$BPID" "$size" "$count" "$conc" push
  one docker "$DPORT" "$DPID" "$size" "$count" "$conc" push
  for r in $(seq "$ROUNDS"); do
    one berth "$BPORT" "$BPID" "$size" "$count" "$conc" pull
    one docker "$DPORT" "$DPID" "$size" "$count" "$conc" pull
  done
  for who in berth docker; do
    RES[$who,$size,hwm]=$(rss_kb "$([ $who = berth ] && echo "$BPID" || echo "$DPID")" VmHWM)
  done
}

MIB=1048576
echo "phase 1: $SMALL x 1 MiB, concurrency ${CONC:-16}, $ROUNDS pull rounds" >&2
phase $MIB "$SMALL" "${CONC:-16}"
echo "phase 2: $LARGE x 100 MiB, concurrency ${CONC:-4}, $ROUNDS pull rounds" >&2
phase $((100*MIB)) "$LARGE" "${CONC:-4}"

echo "phase 3: $MEMN concurrent uploads of 20 MiB (memory)" >&2
declare -A MEM
mem_phase() { # name port pid
  local base peak=0 r lg
  base=$(rss_kb "$3" VmRSS)
  "$LOADGEN" "http://127.0.0.1:$2" bench/mem $((20*MIB)) "$MEMN" "$MEMN" push >/dev/null &
  lg=$!
  while kill -0 $lg 2>/dev/null; do
    r=$(rss_kb "$3" VmRSS); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05
  done
  wait $lg
  MEM[$1,base]=$base; MEM[$1,peak]=$peak
}
mem_phase berth "$BPORT" "$BPID"
mem_phase docker "$DPORT" "$DPID"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }'; }
printf '\n%-16s %9s %9s %9s %9s %6s   %s\n' "" "berth" "berth" "docker" "docker" "" "CPU s/GB: berth srv/cli"
printf '%-16s %9s %9s %9s %9s %6s   %s\n' "" "blobs/s" "MB/s" "blobs/s" "MB/s" "ratio" "docker srv/cli"
for size in $MIB $((100*MIB)); do
  for op in push pull; do
    label="$op $((size/MIB)) MiB"
    m() { median ${RES[$1,$size,$op,$2]}; }
    printf '%-16s %9s %9s %9s %9s %6s   %s/%s  %s/%s\n' "$label" \
      "$(m berth bps)" "$(m berth mbs)" "$(m docker bps)" "$(m docker mbs)" \
      "$(ratio "$(m berth mbs)" "$(m docker mbs)")" \
      "$(m berth scpu)" "$(m berth ccpu)" "$(m docker scpu)" "$(m docker ccpu)"
  done
done
echo "pull rounds MB/s, berth: ${RES[berth,$((100*MIB)),pull,mbs]}; docker: ${RES[docker,$((100*MIB)),pull,mbs]} (100 MiB)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); host TCP congestion control: $(cat "$CC_SYSCTL")"
printf '\n%-22s %14s %14s\n' "RSS (MiB)" berth docker
printf '%-22s %14s %14s\n' "peak after 1 MiB" "$((RES[berth,$MIB,hwm]/1024))" "$((RES[docker,$MIB,hwm]/1024))"
printf '%-22s %14s %14s\n' "peak after 100 MiB" "$((RES[berth,$((100*MIB)),hwm]/1024))" "$((RES[docker,$((100*MIB)),hwm]/1024))"
printf '%-22s %14s %14s\n' "$MEMN uploads: before" "$((MEM[berth,base]/1024))" "$((MEM[docker,base]/1024))"
printf '%-22s %14s %14s\n' "$MEMN uploads: peak" "$((MEM[berth,peak]/1024))" "$((MEM[docker,peak]/1024))"
