#!/usr/bin/env bash
# conformance.sh - run the OCI distribution-spec conformance suite against berth-registry and,
# for comparison, Debian's docker-registry, both on 127.0.0.1. The suite itself is never
# committed here.
#
# Usage: conformance.sh SPEC_CHECKOUT [BERTH_BINARY]
#   SPEC_CHECKOUT  a git checkout of opencontainers/distribution-spec (tag v1.1.1 is used)
#   BERTH_BINARY   default: $CARGO_TARGET_DIR/debug/berth-registry
# Extra Go sources (not in Debian bookworm) are read from GOMODS (default /tmp/gomods):
#   ginkgo/      onsi/ginkgo at v2.11.0
#   reggie/      bloodorangeio/reggie at v0.6.1
#   slim-sprig/  go-task/slim-sprig at 52ccab3ef572
# The rest comes from Debian packages (bookworm's Go 1.19 builds the suite in GOPATH mode):
#   apt-get install golang-go golang-github-google-uuid-dev golang-github-opencontainers-go-digest-dev \
#     golang-github-go-resty-resty-dev golang-gomega-dev golang-github-go-logr-logr-dev \
#     golang-golang-x-net-dev golang-golang-x-sys-dev golang-golang-x-text-dev \
#     golang-golang-x-tools-dev golang-gopkg-yaml.v3-dev golang-github-google-go-cmp-dev \
#     golang-github-mitchellh-mapstructure-dev golang-github-asaskevich-govalidator-dev \
#     golang-github-google-pprof-dev
set -euo pipefail
SPEC=${1:?usage: conformance.sh SPEC_CHECKOUT [BERTH_BINARY]}
BERTH=${2:-${CARGO_TARGET_DIR:-/work/targets/registry}/debug/berth-registry}
GOMODS=${GOMODS:-/tmp/gomods}
WORK=$(mktemp -d /tmp/berth-conformance.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

G=$WORK/gopath/src
mkdir -p "$G/github.com/onsi/ginkgo" "$G/github.com/bloodorangeio" "$G/github.com/go-task" \
  "$G/github.com/go-resty/resty" "$G/github.com/opencontainers/distribution-spec"
ln -s "$GOMODS/ginkgo" "$G/github.com/onsi/ginkgo/v2"
ln -s "$GOMODS/reggie" "$G/github.com/bloodorangeio/reggie"
ln -s "$GOMODS/slim-sprig" "$G/github.com/go-task/slim-sprig"
ln -s /usr/share/gocode/src/github.com/go-resty/resty "$G/github.com/go-resty/resty/v2"
git -C "$SPEC" archive v1.1.1 conformance | tar -x -C "$G/github.com/opencontainers/distribution-spec"
(cd "$G/github.com/opencontainers/distribution-spec/conformance" &&
  GO111MODULE=off GOPATH="$WORK/gopath:/usr/share/gocode" GOFLAGS= go test -c -o "$WORK/conformance.test" .)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run_suite() { # name url
  mkdir -p "$WORK/report-$1"
  (cd "$WORK/report-$1" &&
    OCI_ROOT_URL=$2 OCI_NAMESPACE=myorg/myrepo OCI_CROSSMOUNT_NAMESPACE=myorg/other \
    OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1 \
    OCI_AUTOMATIC_CROSSMOUNT=0 OCI_REPORT_DIR=$PWD "$WORK/conformance.test" >out.txt 2>&1 || true)
  printf '%-16s ' "$1"; sed 's/\x1b\[[0-9;]*m//g' "$WORK/report-$1/out.txt" | grep -E "Passed \|" | tail -1
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/report-$1/out.txt" | grep -E "^\s+\[FAIL\]" || true
}

BP=$(free_port)
mkdir -p "$WORK/berth"
RUST_LOG=warn "$BERTH" --listen "127.0.0.1:$BP" --root "$WORK/berth" >"$WORK/berth.log" 2>&1 &
PIDS+=($!)
DP=$(free_port)
mkdir -p "$WORK/docker"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$WORK/docker" "$DP" >"$WORK/docker.yml"
/usr/bin/docker-registry serve "$WORK/docker.yml" >"$WORK/docker.log" 2>&1 &
PIDS+=($!)
sleep 1.5
run_suite berth-registry "http://127.0.0.1:$BP"
run_suite docker-registry "http://127.0.0.1:$DP"
