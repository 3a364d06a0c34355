#!/usr/bin/env bash
# bench/images.sh - Berth pull+unpack and push of a fresh random layer beside `docker pull` /
# `docker push` of the same kind of image, in the same run, against Debian's docker-registry.
#
# Usage: sudo bench/images.sh [-n RUNS] [-m MIB] [-p]
#   -n  timed runs per side, berth and docker interleaved      (default 5)
#   -m  size of the random layer in MiB                        (default 100)
#   -p  purge the peers' data when stopping peers this script started
# Env: CARGO_TARGET_DIR (default target), REGISTRY_ADDR (127.0.0.1:5000),
#      ANCHOR_SOCK (/run/docker-anchor.sock), ANCHORS (/work/shared/anchors)
#
# Builds the driver crates/distribution/examples/bench_images.rs in release mode (it calls
# berth-distribution as berthd does), starts the peers with start-peers.sh when they are not
# running (and stops only what it started, at exit), then per run:
#   berth:  fresh random layer imported into an empty store, push to a new repository;
#           pull of it into another empty store (layer extracted into its snapshot)
#   docker: fresh random layer, `docker import`, `docker push`; `docker rmi`, `docker pull`
# Prints medians (and min/max) and the docker/berth ratios. Pull targets >= 2x, push >= 4x.
set -euo pipefail

RUNS=5 MIB=100 PURGE=""
while getopts "n:m:ph" o; do
  case $o in
    n) RUNS=$OPTARG ;; m) MIB=$OPTARG ;; p) PURGE=--purge ;;
    *) sed -n '2,19p' "$0"; exit 0 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "images.sh: must run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
REG=${REGISTRY_ADDR:-127.0.0.1:5000}
SOCK=${ANCHOR_SOCK:-/run/docker-anchor.sock}
ANCHORS=${ANCHORS:-$(cd "$HERE/../shared/anchors" 2>/dev/null && pwd || echo /work/shared/anchors)}
DOCKER=(/usr/bin/docker -H "unix://$SOCK")
log() { echo "[images $(date +%H:%M:%S)] $*" >&2; }

log "building the driver (release)"
(cd "$HERE" && cargo build --release -q -p berth-distribution --example bench_images)
DRIVER=$CARGO_TARGET_DIR/release/examples/bench_images

WORK=$(mktemp -d /tmp/berth-images-bench.XXXXXX)
STARTED=0
cleanup() {
  "${DOCKER[@]}" rmi -f "$REG/docker-bench-$$:latest" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  if [ "$STARTED" = 1 ]; then
    log "stopping the peers this script started"
    "$ANCHORS/stop-peers.sh" $PURGE >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

reg_up() { curl -fsS "http://$REG/v2/" >/dev/null 2>&1; }
docker_up() { "${DOCKER[@]}" version >/dev/null 2>&1; }
if ! reg_up || ! docker_up; then
  log "starting the peers (start-peers.sh)"
  STARTED=1
  REGISTRY_ADDR=$REG ANCHOR_SOCK=$SOCK "$ANCHORS/start-peers.sh" >/dev/null
fi
reg_up && docker_up || { echo "images.sh: registry $REG or dockerd $SOCK not answering" >&2; exit 1; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $LOAD_START"
ms() { echo $(( ($2 - $1) / 1000000 )); }
: >"$WORK/times"
for ((run = 0; run < RUNS; run++)); do
  log "run $((run + 1))/$RUNS: berth"
  # one run per driver process, interleaved with docker's so both see the same load
  "$DRIVER" "$REG" "$MIB" 1 "$WORK/berth" | awk -v r="$run" '{print $1, r, $3}' >>"$WORK/times"

  log "run $((run + 1))/$RUNS: docker"
  R="$REG/docker-bench-$$:latest"
  "${DOCKER[@]}" rmi -f "$R" >/dev/null 2>&1 || true
  mkdir -p "$WORK/rand"
  head -c "${MIB}M" /dev/urandom >"$WORK/rand/blob"
  tar -C "$WORK/rand" -c blob | "${DOCKER[@]}" import - "$R" >/dev/null
  rm -rf "$WORK/rand"
  # a new repository per run would not matter to docker: its layer is new each time
  t0=$(date +%s%N); "${DOCKER[@]}" push -q "$R" >/dev/null; t1=$(date +%s%N)
  echo "docker-push $run $(ms "$t0" "$t1" | awk '{printf "%.4f", $1/1000}')" >>"$WORK/times"
  "${DOCKER[@]}" rmi -f "$R" >/dev/null
  t0=$(date +%s%N); "${DOCKER[@]}" pull -q "$R" >/dev/null; t1=$(date +%s%N)
  echo "docker-pull $run $(ms "$t0" "$t1" | awk '{printf "%.4f", $1/1000}')" >>"$WORK/times"
  "${DOCKER[@]}" rmi -f "$R" >/dev/null
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

summary() { # NAME -> "median min max"
  awk -v n="$1" '$1 == n {print $3}' "$WORK/times" | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) {print "- - -"; exit}
         m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
         printf "%.3f %.3f %.3f\n", m, a[1], a[NR]}'
}
median() { summary "$1" | cut -d' ' -f1; }
echo
echo "images: ${MIB} MiB random layer, registry $REG (docker-registry), dockerd $SOCK, $RUNS runs each"
echo "load average: start $LOAD_START, end $LOAD_END; $(nproc) cpus"
printf '%-20s %9s %9s %9s\n' measurement median_s min_s max_s
for n in berth-pull berth-pull-synced docker-pull berth-push docker-push; do
  read -r m lo hi < <(summary "$n")
  printf '%-20s %9s %9s %9s\n' "$n" "$m" "$lo" "$hi"
done
ratio() { awk -v d="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", d / b; else print "-"}'; }
PULL=$(ratio "$(median docker-pull)" "$(median berth-pull)")
PULLS=$(ratio "$(median docker-pull)" "$(median berth-pull-synced)")
PUSH=$(ratio "$(median docker-push)" "$(median berth-push)")
# the load of a shared machine drifts: the ratio within each run (same load) is steadier
paired() { # DOCKER_NAME BERTH_NAME -> median of the per-run docker/berth ratios
  awk -v d="$1" -v b="$2" '$1 == d {dt[$2] = $3} $1 == b {bt[$2] = $3}
    END {for (r in dt) if ((r in bt) && bt[r] > 0) print dt[r] / bt[r]}' "$WORK/times" | sort -g |
    awk '{a[NR] = $1} END {if (NR == 0) {print "-"; exit}
         printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
echo "pull: docker/berth = ${PULL}x (with snapshot syncfs ${PULLS}x), median of per-run ratios $(paired docker-pull berth-pull)x; target >= 2x"
echo "push: docker/berth = ${PUSH}x, median of per-run ratios $(paired docker-push berth-push)x; target >= 4x"
echo "raw timings:"; sed 's/^/  /' "$WORK/times"
