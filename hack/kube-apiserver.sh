#!/usr/bin/env bash
# kube-apiserver — the real API server for the operator's integration tests
# (envtest-style: etcd + kube-apiserver, no kubelet/controllers). Built from
# k8s.io/kubernetes via the module proxy. See docs/tools.md for the flags a test
# harness needs. Prints the binary path last on stdout.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...) at
# v0.0.0 and replaces them with ./staging/src/... dirs that the module zip does
# not contain. So build from a throwaway module that requires k8s.io/kubernetes
# and replaces every staging module with its published tag (v1.X.Y <-> v0.X.Y).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION=v1.34.4
DEST="$WHARF_CACHE/kube-apiserver-$KUBE_VERSION"
cache_hit "$DEST/kube-apiserver"

lock kube-apiserver
cache_hit "$DEST/kube-apiserver"
go_setup
go_lock
start=$(date +%s)
make_tmpdir kube-apiserver tmp
mod="$tmp/mod"
mkdir -p "$mod" "$tmp/bin"

staging_version="v0.${KUBE_VERSION#v1.}"
kube_gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$kube_gomod" ] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"
# Every `k8s.io/<name> v0.0.0` requirement is a staging module.
mapfile -t staging < <(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "$kube_gomod" | sort -u)
[ "${#staging[@]}" -gt 10 ] || die "found only ${#staging[@]} staging modules in $kube_gomod"
log "k8s.io/kubernetes@$KUBE_VERSION: ${#staging[@]} staging modules -> $staging_version"

(
	cd "$mod"
	# go directive/toolchain follow k8s.io/kubernetes's own
	go_directive="$(awk '$1 == "go" { print $2; exit }' "$kube_gomod")"
	{
		echo "module wharf.invalid/kube-apiserver-build"
		echo
		echo "go $go_directive"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		for m in "${staging[@]}"; do
			echo "	$m => $m $staging_version"
		done
		echo ")"
	} >go.mod
	# Blank-import the command so `go mod tidy` keeps every module it needs
	# (never compiled: build tag "tools").
	printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >tools.go
	log "resolving modules (go mod tidy)"
	go mod tidy -e >&2
	ver="k8s.io/component-base/version"
	cver="k8s.io/client-go/pkg/version"
	minor="${KUBE_VERSION#v1.}"
	minor="${minor%%.*}"
	build_date="$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)"
	ldflags="-s -w"
	for pkg in "$ver" "$cver"; do
		ldflags="$ldflags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
	done
	log "building k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION (10-20 min on 2 cores)"
	go build -mod=mod -trimpath -ldflags="$ldflags" -o "$tmp/bin/kube-apiserver" \
		k8s.io/kubernetes/cmd/kube-apiserver
) >&2
rm -rf "$mod"
"$tmp/bin/kube-apiserver" --version >&2
publish "$tmp/bin" "$DEST" kube-apiserver
log "kube-apiserver built in $(elapsed "$start")"
printf '%s\n' "$DEST/kube-apiserver"
