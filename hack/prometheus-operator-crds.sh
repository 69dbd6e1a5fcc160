#!/usr/bin/env bash
# The Prometheus Operator's PodMonitor and ServiceMonitor CRDs, for validating the chart's monitors
# with the apiserver's dry-run. Taken from the prometheus-operator Go module as the module proxy
# serves it (checked against the Go checksum database), not from a copy in this repository.
# Prints the directory holding the two CRD files last on stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROMETHEUS_OPERATOR_VERSION=v0.85.0
DEST="$WHARF_CACHE/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
cache_hit "$DEST/crds"

lock prometheus-operator-crds
cache_hit "$DEST/crds"
go_setup
make_tmpdir prometheus-operator-crds tmp
src="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
mkdir -p "$tmp/crds"
for kind in podmonitors servicemonitors; do
	cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$tmp/crds/"
done
chmod -R u+w,a+rX "$tmp"
publish "$tmp" "$DEST" crds
printf '%s\n' "$DEST/crds"
