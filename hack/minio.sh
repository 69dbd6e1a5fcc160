#!/usr/bin/env bash
# MinIO server, built from source via the Go module proxy (S3 backend for the
# OCI/Cargo blob store tests). Prints the binary path as the last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# Cache key is the release date of the pseudo-version (matches the dir other
# sessions already populated with GOBIN=$WHARF_CACHE/minio-20260212).
DEST="$WHARF_CACHE/minio-20260212"
cache_hit "$DEST/minio"

lock minio
# A `go install` of this exact module started outside these scripts (e.g. with
# GOBIN=$DEST) would finish into the same place: wait for it, don't race it.
while pgrep -f "go install $MINIO_MODULE@$MINIO_VERSION" >/dev/null 2>&1; do
	log "a 'go install $MINIO_MODULE' is already running; waiting for it"
	sleep 15
done
cache_hit "$DEST/minio"

go_setup
go_lock
cache_hit "$DEST/minio"
start=$(date +%s)
make_tmpdir minio tmp
log "building $MINIO_MODULE@$MINIO_VERSION (several minutes on 2 cores)"
GOBIN="$tmp" go install -trimpath -ldflags="-s -w" "$MINIO_MODULE@$MINIO_VERSION" >&2
"$tmp/minio" --version >&2
publish "$tmp" "$DEST" minio
log "minio built in $(elapsed "$start")"
printf '%s\n' "$DEST/minio"
