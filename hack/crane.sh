#!/usr/bin/env bash
# crane (go-containerregistry) — scripted pushes/pulls/copies against the OCI
# registry in interoperability tests. Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CRANE_VERSION=v0.22.1
go_install_cached crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" \
	"$WHARF_CACHE/crane-$CRANE_VERSION" crane \
	"-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION"
