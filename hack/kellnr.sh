#!/usr/bin/env bash
# kellnr (https://kellnr.io), the nearest peer with a sparse index (Ktra 0.7.0 serves its index only
# through git), for the sparse-index figures of bench/cargo.ts. Built with `cargo build --locked` from its
# crates.io package. A LONG build: ~550 crates; on this project's 2 shared cores it had not finished after
# 25 minutes at one job (stopped so as not to skew the benchmark). Prints the binary path as the
# last stdout line. bench/cargo.ts uses kellnr only when this script has already built it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KELLNR_VERSION=6.13.0
DEST="$WHARF_CACHE/kellnr-$KELLNR_VERSION"
cache_hit "$DEST/kellnr"

lock kellnr
cache_hit "$DEST/kellnr"
command -v cargo >/dev/null || die "cargo is not installed"
start=$(date +%s)
make_tmpdir kellnr tmp
log "building kellnr $KELLNR_VERSION from its crates.io package (long build on 2 cores)"
# Its Cargo.lock names webpki-roots 1.0.11, which crates.io no longer serves, and without the lock
# cargo picks crates needing a newer rustc: keep the lock, move only that one crate back.
(cd "$tmp" && curl -sSfL "https://static.crates.io/crates/kellnr/kellnr-$KELLNR_VERSION.crate" | tar xzf -) >&2 ||
	die "could not download kellnr $KELLNR_VERSION from crates.io"
cd "$tmp/kellnr-$KELLNR_VERSION"
cargo update -p webpki-roots@1.0.11 --precise 1.0.10 >&2
CARGO_TARGET_DIR="$tmp/target" cargo build --release --locked --bin kellnr >&2
mkdir -p "$tmp/root/bin"
mv "$tmp/target/release/kellnr" "$tmp/root/bin/kellnr"
mkdir -p "$tmp/out"
mv "$tmp/root/bin/kellnr" "$tmp/out/kellnr"
publish "$tmp/out" "$DEST" kellnr
log "kellnr built in $(elapsed "$start")"
printf '%s\n' "$DEST/kellnr"
