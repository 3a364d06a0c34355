#!/usr/bin/env bash
# Builds Berth's release binaries into one directory, target/dist (printed at
# the end), which is what the quick start, the benches and an install use.
#
# berthd and berth-registry are built for the host (glibc). The programs
# started once per command or per container, `berth`, `berth-runtime` and
# `berth-monitor`, are built static against musl when the Rust target
# x86_64-unknown-linux-musl is installed (scripts/install-deps.sh adds it):
# glibc's start-up reads the CPU's cache layout with dozens of `cpuid`
# instructions, and under a hypervisor each one traps (about 10 µs on the
# cloud VMs Berth is benched on), which made every process start cost ~0.9 ms
# more than a static musl one. Without the musl target the host builds are
# used instead, with a note.
#
# Env: CARGO_TARGET_DIR (default <repo>/target); BERTH_NO_MUSL=1 builds all for the host.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
dist=$target_dir/dist
musl=x86_64-unknown-linux-musl
per_start=(berth berth-runtime berth-monitor)

per_start_pkgs=(-p berth-cli -p berth-runtime-cli -p berth-monitor)

cargo build --release -q -p berthd -p berth-registry

src=$target_dir/release
if [ "${BERTH_NO_MUSL:-0}" != 1 ] && [ "$(uname -m)" = x86_64 ] &&
  rustc --print sysroot >/dev/null 2>&1 &&
  [ -d "$(rustc --print sysroot)/lib/rustlib/$musl" ]; then
  # libseccomp-sys links the static library from this directory; Debian's
  # directory would also hand the linker glibc's libc.a.
  seccomp_dir=$target_dir/musl-libseccomp
  mkdir -p "$seccomp_dir"
  cp -u /usr/lib/x86_64-linux-gnu/libseccomp.a "$seccomp_dir/"
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$seccomp_dir \
    cargo build --release -q --target "$musl" "${per_start_pkgs[@]}"
  src_start=$target_dir/$musl/release
else
  echo "build-release.sh: no musl build (BERTH_NO_MUSL=1, or the Rust target $musl is not" \
    "installed); berth, berth-runtime and berth-monitor are host (glibc) builds, each start" \
    "~1 ms slower under a hypervisor" >&2
  cargo build --release -q "${per_start_pkgs[@]}"
  src_start=$src
fi

mkdir -p "$dist"
# Hard links (copies across file systems): berthd finds berth-runtime and
# berth-monitor next to the path it was started from.
place() { ln -f "$1" "$dist/" 2>/dev/null || cp -f "$1" "$dist/"; }
place "$src/berthd"
place "$src/berth-registry"
for b in "${per_start[@]}"; do place "$src_start/$b"; done
echo "$dist"
