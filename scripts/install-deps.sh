#!/usr/bin/env bash
# Installs every Debian package Berth's build, tests and quick start need.
# Idempotent: packages already present are not downloaded again.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root (apt-get, namespaces, cgroups)" >&2; exit 1; }

PKGS=(
  build-essential pkg-config      # cc for zstd-sys/ring, pkg-config for libseccomp
  libseccomp-dev                  # berth-seccomp links libseccomp
  busybox-static                  # the offline test rootfs
  iproute2 procps util-linux jq curl file tar gzip uidmap   # uidmap: newuidmap/newgidmap for rootless berth-runtime
  runc crun                       # peers the tests and benches compare against
  docker.io containerd            # Debian's dockerd 20.10: the client's suite runs against it too
  skopeo docker-registry umoci    # registry and image interop tests
  openssl                         # registry TLS tests make a private CA
  nftables                        # berthd's NAT and port rules (nft -j)
  tini                            # docker run --init (tini-static as /sbin/docker-init)
  python3                         # docker-py end-to-end tests
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Keep package postinst scripts from starting services (registry, containerd).
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
# docker-py 7, for berthd's docker-py end-to-end test (PyPI).
if ! python3 -c 'import docker' >/dev/null 2>&1; then
  python3 -m pip install -q 'docker>=7,<8' || python3 -m pip install -q --break-system-packages 'docker>=7,<8'
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "install-deps.sh: cargo not found; install Rust with rustup first" >&2; exit 1; }
# Static musl builds of the programs started per command or per container
# (scripts/build-release.sh). Without network access to Rust's distribution
# server this fails, and build-release.sh falls back to host builds.
if [ "$(uname -m)" = x86_64 ] && command -v rustup >/dev/null 2>&1 &&
  ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl ||
    echo "install-deps.sh: could not add the Rust target x86_64-unknown-linux-musl" >&2
fi
