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
exec "$anchors/bench.sh" -i "$images" -s runtime -n "$runs" "$dist/berth-runtime"
