#!/usr/bin/env bash
# oras — pushes OCI artifacts (artifactType, referrers/subject) in the OCI
# interoperability tests. Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ORAS_VERSION=v1.3.6
go_install_cached oras "oras.land/oras/cmd/oras@$ORAS_VERSION" \
	"$WHARF_CACHE/oras-$ORAS_VERSION" oras \
	"-X oras.land/oras/internal/version.Version=${ORAS_VERSION#v} -X oras.land/oras/internal/version.BuildMetadata="
