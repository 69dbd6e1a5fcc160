#!/usr/bin/env bash
# CNCF distribution registry 2.8 (Debian package docker-registry) — reference
# registry for benchmarks/comparisons. The package ships a system service on
# :5000; it is never started here (policy-rc.d denies it during install) and
# its init script is disabled afterwards, so tests own the port.
# Prints /usr/bin/docker-registry as the last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REGISTRY=/usr/bin/docker-registry
cache_hit "$REGISTRY"
apt_install docker-registry
[ -x "$REGISTRY" ] || die "$REGISTRY missing after apt-get install"
# Belt and braces: keep the service from starting on the next boot too.
if command -v systemctl >/dev/null; then
	if [ -d /run/systemd/system ]; then
		systemctl disable --now docker-registry.service >&2 2>/dev/null || true
	else
		systemctl disable docker-registry.service >&2 2>/dev/null || true
	fi
fi
if [ -x /etc/init.d/docker-registry ]; then
	update-rc.d docker-registry disable >&2 2>/dev/null || true
fi
if pgrep -x docker-registry >/dev/null 2>&1; then
	log "WARNING: a docker-registry process is running (port 5000 may be taken)"
fi
"$REGISTRY" --version >&2 || true
printf '%s\n' "$REGISTRY"
