#!/usr/bin/env bash
# daemon.sh - berthd beside dockerd, measured by the anchors' bench in one run.
#
# Usage:  sudo bench/daemon.sh [-n RUNS] [-s SECTIONS] [-o RESULTS]
#   builds the release binaries (scripts/build-release.sh), starts berthd on a temporary data
#   root, makes sure the anchors' dockerd runs (start-peers.sh --no-registry), runs
#   ../shared/anchors/bench.sh "" unix://<berthd socket> and prints the figures that matter:
#   `docker run --rm busybox true` median, 50 x `docker run -d` wall time, idle daemon RSS,
#   per-container monitor (shim) PSS, each with the berthd/dockerd ratio; and berth's own
#   client's run --rm against both daemons, with the docker CLI's floor (docker ps -q).
# Environment:
#   ANCHORS (default /work/shared/anchors)      where bench.sh and start-peers.sh live
#   BERTH_ANCHOR_IMAGES (default /tmp/anchors-images)
#   CARGO_TARGET_DIR (default <repo>/target)    release binaries land in $CARGO_TARGET_DIR/dist
#   BENCH_NO_BUILD=1                            use the binaries already in $CARGO_TARGET_DIR/dist
# Leaves nothing behind: berthd's containers are removed, berthd stopped, its temp dir deleted,
# and dockerd stopped again if this script started it.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ANCHORS="${ANCHORS:-/work/shared/anchors}"
IMG="${BERTH_ANCHOR_IMAGES:-/tmp/anchors-images}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
RUNS=20; SECTIONS="rss,docker,fifty,features"; RES=""
while getopts "n:s:o:h" o; do
  case "$o" in
    n) RUNS="$OPTARG" ;; s) SECTIONS="$OPTARG" ;; o) RES="$OPTARG" ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "daemon.sh: must run as root" >&2; exit 1; }
[ -n "$RES" ] || RES="${TMPDIR:-/tmp}/berth-bench/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RES"
log() { echo "[daemon.sh $(date +%H:%M:%S)] $*" >&2; }
DOCKER=/usr/bin/docker
ANCHOR_SOCK="${ANCHOR_SOCK:-/run/docker-anchor.sock}"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  log "building release binaries into $TARGET/dist"
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" scripts/build-release.sh >/dev/null)
fi
BIN="$TARGET/dist"
for b in berthd berth berth-monitor berth-runtime; do
  [ -x "$BIN/$b" ] || { echo "daemon.sh: $BIN/$b missing" >&2; exit 1; }
done

# Short path: the monitors' unix sockets live under the exec root (sun_path < 108 bytes).
TMP="$(mktemp -d /tmp/bdb.XXXX)"
SOCK="$TMP/b.sock"
BENCH_BRIDGE="bbench$$"
BERTHD_PID=""
STARTED_DOCKERD=0
cleanup() {
  set +e
  if [ -n "$BERTHD_PID" ] && [ -d "/proc/$BERTHD_PID" ]; then
    ids="$($DOCKER -H "unix://$SOCK" ps -aq 2>/dev/null)"
    [ -n "$ids" ] && $DOCKER -H "unix://$SOCK" rm -f $ids >/dev/null 2>&1
    kill -TERM "$BERTHD_PID"
    for _ in $(seq 1 100); do [ -d "/proc/$BERTHD_PID" ] || break; sleep 0.1; done
    [ -d "/proc/$BERTHD_PID" ] && kill -KILL "$BERTHD_PID"
  fi
  # anything berthd mounted under its temp dir (there should be none left)
  grep -F " $TMP" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
    log "WARNING: leftover mount $m"; umount -l "$m"
  done
  cp "$TMP/berthd.log" "$RES/berthd.log" 2>/dev/null
  rm -rf "$TMP"
  # berthd keeps its bridge and nft table across restarts (as dockerd keeps docker0); the
  # bench's own ones go with it.
  ip link del "$BENCH_BRIDGE" 2>/dev/null
  nft delete table inet "berth_$BENCH_BRIDGE" 2>/dev/null
  if [ "$STARTED_DOCKERD" = 1 ]; then "$ANCHORS/stop-peers.sh" >/dev/null 2>&1; fi
}
trap cleanup EXIT

log "starting berthd on unix://$SOCK (data root $TMP/data)"
setsid "$BIN/berthd" -H "unix://$SOCK" --data-root "$TMP/data" --exec-root "$TMP/e" \
  --bridge "$BENCH_BRIDGE" --bip 10.219.0.1/24 \
  --pidfile "$TMP/pid" --config-file /nonexistent -l warn </dev/null >"$TMP/berthd.log" 2>&1 &
BERTHD_PID=$!
for _ in $(seq 1 300); do
  curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
  [ -d "/proc/$BERTHD_PID" ] || { cat "$TMP/berthd.log" >&2; exit 1; }
  sleep 0.1
done
$DOCKER -H "unix://$SOCK" load -q -i "$IMG/busybox-docker.tar" >&2

if ! $DOCKER -H "unix://$ANCHOR_SOCK" version >/dev/null 2>&1; then
  log "starting the anchors' dockerd"
  "$ANCHORS/start-peers.sh" --no-registry --load "$IMG" >&2
  STARTED_DOCKERD=1
fi

log "running the anchors' bench (sections $SECTIONS, $RUNS runs) into $RES"
DOCKER_HOST="unix://$ANCHOR_SOCK" "$ANCHORS/bench.sh" -i "$IMG" -o "$RES" -n "$RUNS" -s "$SECTIONS" \
  "" "unix://$SOCK" > "$RES/bench.out" 2>&1 || log "bench.sh exited $? (see $RES/bench.out)"

# ---------- the clients' share ----------
# The docker CLI alone takes ~40 ms a command here, most of a berthd run. Berth's own client
# against both daemons shows the daemons' part; `docker ps -q` against berthd (answered at
# once) is the docker CLI's floor.
CLIENTS="$RES/raw/clients.json"
if command -v hyperfine >/dev/null && [ -x "$BIN/berth" ]; then
  log "timing berth's client against both daemons, and the docker CLI's floor"
  hyperfine -N -w 3 -r "$RUNS" --export-json "$CLIENTS" \
    -n berth-cli-berthd "$BIN/berth -H unix://$SOCK run --rm --network none busybox true" \
    -n berth-cli-dockerd "$BIN/berth -H unix://$ANCHOR_SOCK run --rm --network none busybox true" \
    -n docker-cli-floor "$DOCKER -H unix://$SOCK ps -q" >/dev/null 2>&1 ||
    log "hyperfine of the clients failed"
fi
# 50 x `berth run -d` with Berth's own client against each daemon, as bench.sh's fifty section
# does with the docker CLI (sequential, --network none, then removed untimed).
FIFTY_CLI="$RES/raw/fifty-berth-cli.tsv"
: > "$FIFTY_CLI"
if [ -x "$BIN/berth" ]; then
  for host in "unix://$SOCK" "unix://$ANCHOR_SOCK"; do
    ids=()
    t0=$(date +%s%N)
    for ((i = 0; i < 50; i++)); do
      id="$("$BIN/berth" -H "$host" run -d --network none busybox sleep 1000)" || { log "berth run -d failed on $host"; break; }
      ids+=("$id")
    done
    t1=$(date +%s%N)
    [ "${#ids[@]}" = 50 ] && awk -v h="$host" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%.2f\n", h, (b - a) / 1e9 }' >> "$FIFTY_CLI"
    [ "${#ids[@]}" -gt 0 ] && "$BIN/berth" -H "$host" rm -f "${ids[@]}" >/dev/null 2>&1
  done
fi
fifty_cli() { # HOST -> seconds for 50 x berth run -d
  awk -F'\t' -v h="$1" '$1 == h { print $2 }' "$FIFTY_CLI" 2>/dev/null
}
client_med() { # NAME -> median ms from the clients' hyperfine export
  [ -s "$CLIENTS" ] || return 0
  python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["results"]:
    if r["command"] == sys.argv[2]: print("%.1f" % (r["median"] * 1000))' "$CLIENTS" "$1"
}

# ---------- the figures ----------
med() { # NAME -> median ms from timings.tsv
  awk -F'\t' -v n="$1" '$1 == n { printf "%.1f", $3 * 1000 }' "$RES/raw/timings.tsv" 2>/dev/null
}
fifty() { # ENGINE -> median over reps of the 50-start wall time (s)
  awk -F'\t' -v e="$1" 'NR > 1 && $1 == e { print $3 }' "$RES/raw/fifty.tsv" 2>/dev/null | sort -n |
    awk '{ a[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
idle_rss() { # ENGINE -> MiB summed over the engine's idle process tree
  awk -F'\t' -v e="$1" '$1 == e && $2 == "idle" { s += $5 } END { if (s) printf "%.1f", s / 1024 }' "$RES/raw/rss.tsv" 2>/dev/null
}
idle_by_comm() { # ENGINE -> "comm=MiB ..." for the idle tree
  awk -F'\t' -v e="$1" '$1 == e && $2 == "idle" { s[$4] += $5 } END { for (k in s) printf "%s=%.1f ", k, s[k] / 1024 }' "$RES/raw/rss.tsv" 2>/dev/null
}
shim_pss() { # ENGINE COMM_REGEX -> mean PSS MiB per process, over every with-N row of that name
  awk -F'\t' -v e="$1" -v c="$2" '$1 == e && $2 ~ /^with-[0-9]+(-shims)?$/ && $4 ~ c { s += $7; n++ }
    END { if (n) printf "%.2f (n=%d)", s / n / 1024, n }' "$RES/raw/rss.tsv" 2>/dev/null
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

# A section left out (-s) leaves its figures empty (n/a) instead of stopping the script.
D_RUN="$(med engine1-docker-run-rm || true)"; B_RUN="$(med engine2-docker-run-rm || true)"
D_CR="$(med engine1-docker-create-rm || true)"; B_CR="$(med engine2-docker-create-rm || true)"
D_50="$(fifty engine1 || true)"; B_50="$(fifty engine2 || true)"
D_RSS="$(idle_rss engine1 || true)"; B_RSS="$(idle_rss engine2 || true)"
D_SHIM="$(shim_pss engine1 'containerd-shim' || true)"; B_SHIM="$(shim_pss engine2 'berth-monitor' || true)"
D_BCLI="$(client_med berth-cli-dockerd || true)"; B_BCLI="$(client_med berth-cli-berthd || true)"
D_F50CLI="$(fifty_cli "unix://$ANCHOR_SOCK")"; B_F50CLI="$(fifty_cli "unix://$SOCK")"
FLOOR="$(client_med docker-cli-floor || true)"
{
  echo "# berthd vs dockerd ($(date -u +%FT%TZ), load at end $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| figure | dockerd | berthd | berthd/dockerd |"
  echo "|---|---:|---:|---:|"
  echo "| docker run --rm busybox true, median ms | ${D_RUN:-n/a} | ${B_RUN:-n/a} | $(ratio "$B_RUN" "$D_RUN") |"
  echo "| docker rm \$(docker create busybox true), median ms | ${D_CR:-n/a} | ${B_CR:-n/a} | $(ratio "$B_CR" "$D_CR") |"
  echo "| 50 x docker run -d, s (median of reps) | ${D_50:-n/a} | ${B_50:-n/a} | $(ratio "$B_50" "$D_50") |"
  echo "| berth run --rm busybox true (berth's client), median ms | ${D_BCLI:-n/a} | ${B_BCLI:-n/a} | $(ratio "$B_BCLI" "$D_BCLI") |"
  echo "| 50 x berth run -d (berth's client), s | ${D_F50CLI:-n/a} | ${B_F50CLI:-n/a} | $(ratio "$B_F50CLI" "$D_F50CLI") |"
  echo "| idle daemon RSS, MiB | ${D_RSS:-n/a} | ${B_RSS:-n/a} | $(ratio "$B_RSS" "$D_RSS") |"
  echo "| per-container shim/monitor PSS, MiB | ${D_SHIM:-n/a} | ${B_SHIM:-n/a} | $(ratio "${B_SHIM%% *}" "${D_SHIM%% *}") |"
  echo
  echo "docker CLI floor (docker ps -q against berthd), median ms: ${FLOOR:-n/a}"
  echo "idle trees: dockerd: $(idle_by_comm engine1); berthd: $(idle_by_comm engine2)"
  echo
  echo "full tables: $RES/summary.md"
} > "$RES/daemon.md"
cat "$RES/daemon.md"
if [ -s "$RES/failures.txt" ]; then echo; echo "bench failures:"; cat "$RES/failures.txt"; fi
