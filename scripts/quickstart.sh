#!/usr/bin/env bash
# Sets up Berth on a fresh Debian machine and runs a real container end to end:
# installs the Debian packages, builds the release binaries, builds a busybox
# image offline (from Debian's busybox-static), starts berthd, imports the
# image and runs it with `berth run`. Then stops the daemon again.
#
# Env: QUICKSTART_DIR (default /tmp/berth-quickstart) holds the daemon's state.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
bin=$(scripts/build-release.sh)
dir=${QUICKSTART_DIR:-/tmp/berth-quickstart}
sudo_ mkdir -p "$dir"

# 1. The OCI runtime alone, on a bundle (what containerd or dockerd would drive).
sudo_ env BERTH_RUNTIME="$bin/berth-runtime" scripts/make-busybox-bundle.sh "$dir/bundle" \
  sh -c 'echo "Hello from a Berth container: pid $$, hostname $(hostname), uid $(id -u)"'
sudo_ "$bin/berth-runtime" run --bundle "$dir/bundle" "quickstart-$$"

# 2. The daemon and the client: berthd serves the Docker Engine API on a socket.
sock=unix://$dir/berth.sock
sudo_ "$bin/berthd" -H "$sock" --data-root "$dir/data" --exec-root "$dir/run" \
  --pidfile "$dir/berthd.pid" >"$dir/berthd.log" 2>&1 &
stop_daemon() { sudo_ kill "$(cat "$dir/berthd.pid" 2>/dev/null)" 2>/dev/null || true; }
trap stop_daemon EXIT
for _ in $(seq 100); do sudo_ "$bin/berth" -H "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
berth() { sudo_ "$bin/berth" -H "$sock" "$@"; }
if ! berth image inspect busybox:latest >/dev/null 2>&1; then
  sudo_ tar -C "$dir/bundle/rootfs" -c . | berth import --change 'CMD ["sh"]' - busybox:latest >/dev/null
fi
berth images busybox
berth run --rm --name quickstart busybox \
  sh -c 'echo "Hello from berthd: container $(hostname), $(ip -4 -o addr show eth0 | awk "{print \$4}")"'
