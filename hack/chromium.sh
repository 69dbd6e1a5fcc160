#!/usr/bin/env bash
# Chromium (Debian package) — headless browser for the web UI / OIDC login
# tests (playwright-core drives it via executablePath; Playwright's own browser
# download is not reachable). Prints /usr/bin/chromium as the last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM=/usr/bin/chromium
cache_hit "$CHROMIUM"
# fonts-liberation: without any font, pages render as tofu in screenshots.
apt_install chromium fonts-liberation
[ -x "$CHROMIUM" ] || die "$CHROMIUM missing after apt-get install"
"$CHROMIUM" --headless --no-sandbox --version >&2 || true
printf '%s\n' "$CHROMIUM"
