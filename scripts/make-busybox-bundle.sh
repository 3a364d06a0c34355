#!/usr/bin/env bash
# Builds an OCI bundle whose rootfs is Debian's busybox-static, offline.
#
# Usage: scripts/make-busybox-bundle.sh DIR [ARGS...]
#   DIR/rootfs       busybox, its applet symlinks, /etc/passwd, /etc/group
#   DIR/config.json  `berth-runtime spec` defaults, terminal off, args ARGS
#                    (default: sh -c 'echo Hello from a Berth container')
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,8p' "$0"; exit 2; }
dir=$1; shift
BUSYBOX=${BUSYBOX:-/bin/busybox}
RUNTIME=${BERTH_RUNTIME:-$(dirname "$0")/../target/dist/berth-runtime}
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
  { echo "make-busybox-bundle.sh: $BUSYBOX is not a static busybox (apt-get install busybox-static)" >&2; exit 1; }

rm -rf "$dir/rootfs" "$dir/config.json"
mkdir -p "$dir/rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,root,home/user,usr/bin,usr/sbin,var}
cp "$BUSYBOX" "$dir/rootfs/bin/busybox"
chmod 0755 "$dir/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  ln -sf /bin/busybox "$dir/rootfs/$applet"
done
chmod 1777 "$dir/rootfs/tmp"
cat > "$dir/rootfs/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$dir/rootfs/etc/group" <<'GR'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
GR
chown 1000:1000 "$dir/rootfs/home/user"

if [ $# -eq 0 ]; then set -- sh -c 'echo Hello from a Berth container'; fi
"$RUNTIME" spec --bundle "$dir"
args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
jq --argjson args "$args" '.process.terminal = false | .process.args = $args | .hostname = "berth"' \
  "$dir/config.json" > "$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
