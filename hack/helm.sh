#!/usr/bin/env bash
# helm v3 — lints/templates/installs the chart in charts/ (and tests helm's OCI
# registry support against our registry). Prints the binary path last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v3.22.0
go_install_cached helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
	"$WHARF_CACHE/helm-$HELM_VERSION" helm \
	"-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
