#!/usr/bin/env bash
# etcd server — backing store for the kube-apiserver the operator tests run
# (envtest-style: etcd + kube-apiserver, no kubelet). Debian bookworm only has
# etcd-server 3.4.23, below the 3.5 floor of Kubernetes 1.34, so build 3.6 from
# the module proxy. go.etcd.io/etcd/server/v3's go.mod replaces its sibling
# modules with ../ paths (so `go install @v` refuses); build from a copy with
# those replaces dropped — the siblings resolve to the same published version.
# Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ETCD_VERSION=v3.6.16
ETCD_MODULE=go.etcd.io/etcd/server/v3
DEST="$WHARF_CACHE/etcd-$ETCD_VERSION"
cache_hit "$DEST/etcd"

lock etcd
cache_hit "$DEST/etcd"
go_setup
go_lock
start=$(date +%s)
make_tmpdir etcd tmp
src="$tmp/src"
mkdir -p "$src" "$tmp/bin"
copy_module "$ETCD_MODULE@$ETCD_VERSION" "$src"
(
	cd "$src"
	drop_replaces
	log "building $ETCD_MODULE@$ETCD_VERSION"
	go build -mod=mod -trimpath \
		-ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
		-o "$tmp/bin/etcd" .
) >&2
rm -rf "$src"
"$tmp/bin/etcd" --version >&2
publish "$tmp/bin" "$DEST" etcd
log "etcd built in $(elapsed "$start")"
printf '%s\n' "$DEST/etcd"
