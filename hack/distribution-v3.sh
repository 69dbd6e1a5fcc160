#!/usr/bin/env bash
# CNCF distribution registry v3 (Go module github.com/distribution/distribution/v3),
# the OCI peer benchmarks compare against (fs and s3 drivers, proxy mode).
# Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DISTRIBUTION_V3_VERSION=v3.1.2
go_install_cached distribution-v3 \
	"github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_V3_VERSION" \
	"$WHARF_CACHE/distribution-$DISTRIBUTION_V3_VERSION" registry \
	"-X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_V3_VERSION"
