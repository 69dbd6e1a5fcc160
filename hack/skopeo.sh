#!/usr/bin/env bash
# skopeo (Debian package) — copies images between registries in the OCI
# interoperability tests. Prints the binary path as the last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if p="$(command -v skopeo)"; then
	printf '%s\n' "$p"
	exit 0
fi
apt_install skopeo
p="$(command -v skopeo)" || die "skopeo not on PATH after apt-get install"
skopeo --version >&2
printf '%s\n' "$p"
