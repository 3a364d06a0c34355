#!/bin/sh
# Regenerates profiles/docker-default.json: Docker's default seccomp profile (moby's format),
# taken from the Debian package that ships Docker's Go sources. The package's own file is
# used when installed; otherwise its .deb is fetched with `apt-get download` (no dependencies
# installed) and the one file extracted. A "berthSource" field records package and version.
set -eu

PKG=golang-github-docker-docker-dev
FILE=/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
OUT="$(cd "$(dirname "$0")/.." && pwd)/profiles/docker-default.json"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt-get download runs as _apt where it can; let it write here.
chmod 755 "$tmp"

if [ -f "$FILE" ] && dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed"; then
    version=$(dpkg-query -W -f='${Version}' "$PKG")
    cp "$FILE" "$tmp/default.json"
else
    (cd "$tmp" && apt-get download "$PKG" >/dev/null)
    deb=$(ls "$tmp"/*.deb)
    version=$(dpkg-deb -f "$deb" Version)
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$FILE" > "$tmp/default.json"
fi

python3 - "$tmp/default.json" "$OUT" "$PKG" "$version" "$FILE" <<'PY'
import json, sys
src, out, pkg, version, path = sys.argv[1:6]
with open(src) as f:
    profile = json.load(f)
header = {"berthSource": {"debianPackage": pkg, "version": version, "path": path}}
header.update(profile)
with open(out + ".tmp", "w") as f:
    json.dump(header, f, indent="\t")
    f.write("\n")
import os
os.replace(out + ".tmp", out)
print(f"wrote {out} from {pkg} {version}")
PY
