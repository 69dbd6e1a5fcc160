#!/usr/bin/env bash
# OCI distribution-spec conformance suite (the "new" suite from distribution-spec
# main: a plain Go program, configured by OCI_* env vars / oci-conformance.yaml,
# writing results/{results.yaml,junit.xml,report.html}). See docs/tools.md.
# The legacy Ginkgo suite (tag v1.1.1) is not obtainable: conformance/ is its own
# module and the proxy serves no tagged version of it, and the root module's zip
# at v1.1.1 excludes the nested module. Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONF_MODULE=github.com/opencontainers/distribution-spec/conformance
CONF_VERSION=v0.0.0-20260831232431-97274622c111
DEST="$WHARF_CACHE/conformance-20260831-97274622c111"
cache_hit "$DEST/conformance"

lock conformance
cache_hit "$DEST/conformance"
go_setup
go_lock
start=$(date +%s)
make_tmpdir conformance tmp
src="$tmp/src"
mkdir -p "$src" "$tmp/bin"
# Build from a copy of the module (not `go install @v`) so the module's own
# go.mod/go.sum are what resolve dependencies, exactly as upstream builds it.
copy_module "$CONF_MODULE@$CONF_VERSION" "$src"
log "building $CONF_MODULE@$CONF_VERSION"
(cd "$src" && go build -mod=mod -trimpath \
	-ldflags="-s -w -X main.Version=$CONF_VERSION" -o "$tmp/bin/conformance" .) >&2
rm -rf "$src"
publish "$tmp/bin" "$DEST" conformance
log "conformance built in $(elapsed "$start")"
printf '%s\n' "$DEST/conformance"
