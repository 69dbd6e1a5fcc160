#!/usr/bin/env bash
# RestAuthClient 0.6.2 + RestAuthCommon 0.7.0 (PyPI), the released RestAuth client library, in a
# venv of pyenv's Python 3.6 (the Python of its time). Tests drive it against a real wharf to see
# what a wiki using it sees (test/auth/restauthclient.test.ts). Prints the venv's python as the
# last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENT_VERSION=0.6.2
COMMON_VERSION=0.7.0
PYTHON36="${WHARF_PYTHON36:-/root/.pyenv/versions/3.6.15/bin/python3.6}"
dest="$WHARF_CACHE/restauthclient-$CLIENT_VERSION"
# `python` is written last, once the libraries import: its presence means a finished install.
cache_hit "$dest/python"
lock restauthclient
cache_hit "$dest/python"

[ -x "$PYTHON36" ] || die "no Python 3.6 at $PYTHON36 (set WHARF_PYTHON36)"
# A venv cannot be moved once made: build it in place, starting over after an interrupted run.
rm -rf "$dest"
log "creating a Python 3.6 venv in $dest"
"$PYTHON36" -m venv "$dest" >&2
"$dest/bin/python" -m pip install --quiet --disable-pip-version-check \
	"RestAuthCommon==$COMMON_VERSION" "RestAuthClient==$CLIENT_VERSION" >&2
"$dest/bin/python" -c 'import RestAuthClient.common, RestAuthCommon.handlers' \
	|| die "RestAuthClient does not import"
"$dest/bin/python" -m pip show RestAuthClient RestAuthCommon 2>/dev/null | grep -E '^(Name|Version):' >&2
# A wrapper, not a symlink: Python finds its venv from the path it was started by.
printf '#!/bin/sh\nexec "%s/bin/python" "$@"\n' "$dest" >"$dest/python.tmp"
chmod +x "$dest/python.tmp"
mv -f "$dest/python.tmp" "$dest/python"
printf '%s\n' "$dest/python"
