#!/usr/bin/env bash
# Sets up Berth on a fresh Debian machine and runs a real container:
# installs the Debian packages, builds release binaries, builds a busybox
# bundle offline from busybox-static, and runs it with berth-runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p berth-runtime-cli
bundle=${BUNDLE_DIR:-/tmp/berth-quickstart}
sudo_ env BERTH_RUNTIME="$PWD/target/release/berth-runtime" scripts/make-busybox-bundle.sh "$bundle" \
  sh -c 'echo "Hello from a Berth container: pid $$, hostname $(hostname), uid $(id -u)"'
sudo_ target/release/berth-runtime run --bundle "$bundle" "quickstart-$$"
