#!/usr/bin/env bash
# Ktra (https://github.com/moriturus/ktra), the peer Cargo registry the Cargo
# benchmark (bench/cargo.ts) compares wharf against. Built with `cargo install`
# from crates.io (a long Rust build: ~10+ min on 2 cores). Prints the binary
# path as the last stdout line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KTRA_VERSION=0.7.0
DEST="$WHARF_CACHE/ktra-$KTRA_VERSION"
cache_hit "$DEST/ktra"

lock ktra
cache_hit "$DEST/ktra"
command -v cargo >/dev/null || die "cargo is not installed"
start=$(date +%s)
make_tmpdir ktra tmp
log "building ktra $KTRA_VERSION with cargo install (long build on 2 cores)"
# --locked: the crate's own Cargo.lock (newer deps of 2022-era crates break it).
# Default features: sled DB, secure auth, crates.io mirroring.
CARGO_TARGET_DIR="$tmp/target" cargo install --locked --root "$tmp/root" \
	--version "$KTRA_VERSION" ktra >&2
mkdir -p "$tmp/out"
mv "$tmp/root/bin/ktra" "$tmp/out/ktra"
publish "$tmp/out" "$DEST" ktra
log "ktra built in $(elapsed "$start")"
printf '%s\n' "$DEST/ktra"
