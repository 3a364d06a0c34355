#!/usr/bin/env bash
# Runs Berth's whole test suite. Tests start real containers, mounts and
# cgroups, so this runs as root; it installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"
scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The reference images (busybox, offline from Debian packages) several test
# binaries read; built once here so parallel tests do not race to make them.
anchors=${ANCHORS:-$PWD/../shared/anchors}
export BERTH_ANCHOR_IMAGES=${BERTH_ANCHOR_IMAGES:-${TMPDIR:-/tmp}/anchors-images}
if [ -x "$anchors/make-images.sh" ]; then
  "$anchors/make-images.sh" "$BERTH_ANCHOR_IMAGES" >/dev/null
fi
# crun 1.8 (a runtime berthd's tests select with --runtime crun) refuses every
# container on a hybrid host whose cgroup2 mount still holds a controller
# (hugetlb on these VMs). As ../shared/anchors/start-peers.sh does, each such
# controller moves to a v1 hierarchy of its own; Berth's runtime works either way.
for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null); do
  mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
    echo "test.sh: could not move cgroup controller $c off cgroup2; crun will refuse this host" >&2
done
# Incremental caches double the size of target/ and a CI build is clean anyway.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace "$@"
# What users run: target/dist from scripts/build-release.sh, where berth,
# berth-runtime and berth-monitor are static musl builds. Their own suites
# again, built for musl, and the client's end-to-end suite against those
# programs (skipped, with build-release.sh's note, without the musl target).
dist=$(scripts/build-release.sh)
if file "$dist/berth-runtime" | grep -q 'static'; then
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=${CARGO_TARGET_DIR:-$PWD/target}/musl-libseccomp \
    cargo nextest run --target x86_64-unknown-linux-musl \
    -p berth-runtime-cli -p berth-monitor -p berth-seccomp "$@"
  BERTH_BIN_DIR=$dist cargo nextest run -p berth-cli --test daemon "$@"
fi
# Berth's client against Debian's dockerd 20.10 (API 1.41), started by the
# anchors' start-peers.sh unless one runs already: an older daemon refuses the
# client's first call as too new, and the client settles the version down. The
# same dockerd then runs the ignored tests that need one.
anchor_sock=/run/docker-anchor.sock
if [ -x "$anchors/start-peers.sh" ] && command -v dockerd >/dev/null &&
  [ -s "$BERTH_ANCHOR_IMAGES/busybox-docker.tar" ]; then
  started_dockerd=0
  if [ ! -S "$anchor_sock" ]; then
    trap '"$anchors/stop-peers.sh" --purge >/dev/null 2>&1 || true' EXIT
    "$anchors/start-peers.sh" --no-registry >/dev/null
    started_dockerd=1
  fi
  docker -H "unix://$anchor_sock" load -i "$BERTH_ANCHOR_IMAGES/busybox-docker.tar" >/dev/null
  BERTH_TEST_HOST=unix://$anchor_sock BERTH_BIN_DIR=$dist cargo nextest run -p berth-cli --test daemon "$@"
  # The tests that need a real dockerd, skipped in the workspace run: dockerd logs in
  # to, pushes to and pulls from berth-registry; docker save/load round trips with Berth.
  BERTH_TEST_DOCKER_HOST=unix://$anchor_sock cargo nextest run --run-ignored ignored-only \
    -p berth-registry --test docker -p berth-image --test docker_compat "$@"
  if [ "$started_dockerd" = 1 ]; then
    "$anchors/stop-peers.sh" --purge >/dev/null
    trap - EXIT
  fi
fi
