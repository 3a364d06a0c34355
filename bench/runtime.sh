#!/usr/bin/env bash
# Times berth-runtime beside runc and crun in one run (the shared anchors'
# bench.sh, runtime section): `run` of `true`, and create+start+delete, on
# the same busybox bundle. Quote the ratios: the machines are noisy.
#
# Usage: bench/runtime.sh [RUNS]   (as root; builds the release binaries into target/dist)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
anchors=${ANCHORS:-../shared/anchors}
dist=$(scripts/build-release.sh)
"$anchors/install.sh" >/dev/null
images=${TMPDIR:-/tmp}/anchors-images
[ -d "$images/busybox-bundle" ] || "$anchors/make-images.sh" "$images" >/dev/null
# crun 1.8 refuses every container on a hybrid host whose cgroup2 mount still
# holds a controller; the anchors' start-peers.sh moves it to a v1 mount (as a
# side effect of starting dockerd, which is stopped again here if it was not
# running before).
started_peers=0
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  pidfile=${ANCHOR_STATE:-/run/anchors}/dockerd.pid
  if ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    "$anchors/start-peers.sh" --no-registry >/dev/null && started_peers=1
  fi
fi
status=0
"$anchors/bench.sh" -i "$images" -s runtime -n "$runs" "$dist/berth-runtime" || status=$?
[ "$started_peers" = 1 ] && "$anchors/stop-peers.sh" >/dev/null
exit "$status"
