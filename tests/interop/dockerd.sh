#!/usr/bin/env bash
# Opt-in interop test: Debian's dockerd and containerd drive berth-runtime in
# runc's place. Needs docker.io and containerd (../shared/anchors/install.sh)
# and the busybox image from make-images.sh; runs as root, loopback only,
# containers with --network none.
#
# Usage: tests/interop/dockerd.sh [BERTH_RUNTIME] [IMAGES_DIR]
# Starts a private dockerd on /run/berth-interop.sock, runs the checks, and
# stops it again (also on failure). Prints "N passed, M failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RT=$(readlink -f "${1:-$repo/target/dist/berth-runtime}")
IMAGES=${2:-${TMPDIR:-/tmp}/anchors-images}
ANCHORS=${ANCHORS:-$repo/../shared/anchors}
[ "$(id -u)" = 0 ] || { echo "dockerd.sh: run as root" >&2; exit 1; }
[ -x "$RT" ] || { echo "dockerd.sh: no runtime at $RT (scripts/build-release.sh)" >&2; exit 1; }
[ -x /usr/sbin/dockerd ] || { echo "dockerd.sh: needs Debian's docker.io ($ANCHORS/install.sh)" >&2; exit 1; }
[ -f "$IMAGES/busybox-docker.tar" ] || "$ANCHORS/make-images.sh" "$IMAGES" >/dev/null

export ANCHOR_SOCK=/run/berth-interop.sock ANCHOR_DATA=/var/lib/berth-interop \
  ANCHOR_EXEC=/run/berth-interop ANCHOR_STATE=/run/berth-interop-state \
  ANCHOR_CGROUP_PARENT=/berth-interop ANCHOR_EXTRA_RUNTIME="berth=$RT"
cleanup() { "$ANCHORS/stop-peers.sh" --purge >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$ANCHORS/start-peers.sh" --no-registry --load "$IMAGES" >/dev/null || { echo "dockerd.sh: dockerd did not start" >&2; exit 1; }
D() { /usr/bin/docker -H "unix://$ANCHOR_SOCK" "$@"; }
RUN=(run --runtime berth --network none)

pass=0; fail=0
check() { # NAME EXPECTED-REGEX COMMAND...
  local name=$1 want=$2; shift 2
  local out; out=$("$@" 2>&1)
  if printf '%s' "$out" | grep -Eq -- "$want"; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name: wanted /$want/, got: $(printf '%s' "$out" | head -c 400)"; fi
}

check "run --rm echo" '^hi$' D "${RUN[@]}" --rm busybox echo hi
check "exit code" '^7$' bash -c "/usr/bin/docker -H unix://$ANCHOR_SOCK ${RUN[*]} --rm busybox sh -c 'exit 7'; echo \$?"
check "run -it (pty)" 'pts' script -qec "/usr/bin/docker -H unix://$ANCHOR_SOCK ${RUN[*]} --rm -it busybox tty" /dev/null
check "seccomp default profile" 'Seccomp:[[:space:]]+2' D "${RUN[@]}" --rm busybox grep Seccomp: /proc/self/status
check "cap-drop ALL" 'CapEff:[[:space:]]+0000000000000000' D "${RUN[@]}" --rm --cap-drop ALL busybox grep CapEff /proc/self/status
check "user 1000" '^1000$' D "${RUN[@]}" --rm --user 1000 busybox id -u
check "pids-limit" '^12$' D "${RUN[@]}" --rm --pids-limit 12 busybox cat /sys/fs/cgroup/pids/pids.max
check "memory 64m OOM" 'true|137' bash -c "/usr/bin/docker -H unix://$ANCHOR_SOCK ${RUN[*]} --name berth-oom -m 64m --memory-swap 64m busybox sh -c 'tail /dev/zero'; /usr/bin/docker -H unix://$ANCHOR_SOCK inspect -f '{{.State.OOMKilled}} {{.State.ExitCode}}' berth-oom; /usr/bin/docker -H unix://$ANCHOR_SOCK rm -f berth-oom >/dev/null"
D "${RUN[@]}" -d --name berth-bg busybox sleep 300 >/dev/null 2>&1
check "run -d + exec" '^inside$' D exec berth-bg echo inside
check "exec exit code" '^3$' bash -c "/usr/bin/docker -H unix://$ANCHOR_SOCK exec berth-bg sh -c 'exit 3'; echo \$?"
check "top (ps)" 'sleep 300' D top berth-bg
check "pause/unpause" '^paused running$' bash -c "/usr/bin/docker -H unix://$ANCHOR_SOCK pause berth-bg >/dev/null; a=\$(/usr/bin/docker -H unix://$ANCHOR_SOCK inspect -f '{{.State.Status}}' berth-bg); /usr/bin/docker -H unix://$ANCHOR_SOCK unpause berth-bg >/dev/null; b=\$(/usr/bin/docker -H unix://$ANCHOR_SOCK inspect -f '{{.State.Status}}' berth-bg); echo \$a \$b"
check "update memory" '^100663296$' bash -c "/usr/bin/docker -H unix://$ANCHOR_SOCK update -m 96m --memory-swap 96m berth-bg >/dev/null && /usr/bin/docker -H unix://$ANCHOR_SOCK exec berth-bg cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
check "stop" '^berth-bg$' D stop -t 1 berth-bg
check "rm" '^berth-bg$' D rm berth-bg

# containerd directly, through ctr, with berth-runtime as the runc binary.
CTR=(ctr --address "$ANCHOR_EXEC/containerd/containerd.sock" --namespace berth-interop)
if command -v ctr >/dev/null && [ -S "$ANCHOR_EXEC/containerd/containerd.sock" ]; then
  "${CTR[@]}" images import --all-platforms "$IMAGES/busybox-docker.tar" >/dev/null 2>&1
  img=$("${CTR[@]}" images ls -q 2>/dev/null | grep busybox | head -1)
  check "ctr run --runc-binary" '^from ctr$' "${CTR[@]}" run --rm --runc-binary "$RT" "$img" berth-ctr echo from ctr
  "${CTR[@]}" images rm "$img" >/dev/null 2>&1
else
  fail=$((fail+1)); echo "FAIL containerd socket not found under $ANCHOR_EXEC"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
