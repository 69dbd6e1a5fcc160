# shellcheck shell=bash
# Shared helpers for the hack/*.sh tool installers. Source it, don't run it.
#
# Conventions every installer follows:
#   * the tool lands in "$WHARF_CACHE/<tool>-<version>/" (outside the clone, so
#     fresh clones and CI runs on the same machine reuse it);
#   * all progress goes to stderr; the LAST line of stdout is the absolute path
#     of the binary (or bin dir);
#   * a warm cache is a fast no-op (a single `-x` test before any other work);
#   * builds happen in "$WHARF_CACHE/.tmp/" (same filesystem) and are renamed
#     into place, so an interrupted build never leaves a half-filled cache dir;
#   * one lock per tool stops two callers building the same thing, and one
#     global lock serialises Go builds (2 cores: parallel Go builds only thrash).

set -euo pipefail

if [ -z "${HOME:-}" ]; then
	HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
	export HOME
fi
WHARF_CACHE="${WHARF_CACHE:-$HOME/.cache/wharf}"
export WHARF_CACHE
WHARF_HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export WHARF_HACK_DIR

log() { printf '[%s] %s\n' "$(basename "${0}" .sh)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# cache_hit PATH: if PATH is executable, print it and end the script (exit 0).
cache_hit() {
	if [ -x "$1" ]; then
		printf '%s\n' "$1"
		exit 0
	fi
}

# lock NAME: take an exclusive lock held until the calling script exits.
lock() {
	local name="$1" fd
	mkdir -p "$WHARF_CACHE/.locks"
	exec {fd}>"$WHARF_CACHE/.locks/$name.lock"
	if ! flock -n "$fd"; then
		log "waiting for lock '$name' (another install is running)"
		flock "$fd"
	fi
}

# make_tmpdir TOOL VAR: create a scratch dir on the cache filesystem (so the
# final rename is atomic), store its path in VAR; removed when the script exits.
# (Sets a variable rather than printing: a $(...) subshell would lose the
# cleanup registration.)
WHARF_TMPDIRS=()
_wharf_cleanup() {
	local d
	for d in "${WHARF_TMPDIRS[@]+"${WHARF_TMPDIRS[@]}"}"; do
		[ -n "$d" ] && [ -e "$d" ] || continue
		chmod -R u+w "$d" 2>/dev/null || true
		rm -rf "$d"
	done
}
trap _wharf_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
make_tmpdir() {
	mkdir -p "$WHARF_CACHE/.tmp"
	local d
	d="$(mktemp -d "$WHARF_CACHE/.tmp/$1.XXXXXX")"
	chmod 755 "$d"
	WHARF_TMPDIRS+=("$d")
	printf -v "$2" '%s' "$d"
}

# publish SRC_DIR DEST_DIR PRIMARY: move a finished build into the cache.
# Renames the whole dir when DEST_DIR is absent (or an empty dir); otherwise moves
# files one by one with PRIMARY (the file cache_hit checks) renamed last.
publish() {
	local src="$1" dest="$2" primary="$3" f
	[ -x "$src/$primary" ] || die "build produced no $src/$primary"
	mkdir -p "$(dirname "$dest")"
	if [ -d "$dest" ] && [ -z "$(ls -A "$dest")" ]; then
		rmdir "$dest" 2>/dev/null || true
	fi
	if [ ! -e "$dest" ] && mv -T "$src" "$dest" 2>/dev/null; then
		return 0
	fi
	mkdir -p "$dest"
	for f in "$src"/* "$src"/.[!.]*; do
		[ -e "$f" ] || continue
		[ "$(basename "$f")" = "$primary" ] && continue
		rm -rf "${dest:?}/$(basename "$f")"
		mv -f "$f" "$dest/"
	done
	mv -f "$src/$primary" "$dest/$primary"
}

# go_setup: environment for reproducible, offline-friendly Go builds.
go_setup() {
	if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
		PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null || die "go is not installed (need Go >= 1.26 for oras/helm/etcd)"
	export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
	export CGO_ENABLED="${CGO_ENABLED:-0}"
	export GOFLAGS="${GOFLAGS:--buildvcs=false}"
	export GOMAXPROCS="${GOMAXPROCS:-$(nproc)}"
	# Nothing but the module proxy is reachable; fail fast instead of trying git.
	export GOPROXY="${WHARF_GOPROXY:-https://proxy.golang.org}"
}

# go_lock: serialise Go builds across all installers.
go_lock() { lock go-build; }

# module_dir MODULE@VERSION: download a module from the proxy, print its source dir.
module_dir() {
	local out
	out="$(go mod download -json "$1")" || die "go mod download $1 failed: $out"
	printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# copy_module MODULE@VERSION DEST: writable copy of a module's source (for
# main packages whose go.mod has replace directives, so `go install @v` refuses).
copy_module() {
	local dir
	dir="$(module_dir "$1")"
	[ -d "$dir" ] || die "no source dir for $1"
	cp -R "$dir/." "$2/"
	chmod -R u+w "$2"
}

# elapsed SECONDS_START: human readable duration.
elapsed() {
	local s=$(($(date +%s) - $1))
	printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# apt_install PKG...: install Debian packages non-interactively, without starting
# services. Runs `apt-get update` first when a package has no candidate (fresh
# machine, empty lists) or when an install fails (stale lists), at most once.
apt_install() {
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	lock apt
	local need_update=0 p
	if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
		need_update=1
	fi
	for p in "$@"; do
		if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
			need_update=1
		fi
	done
	export DEBIAN_FRONTEND=noninteractive
	local apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
	if [ "$need_update" = 1 ]; then
		log "apt-get update"
		$sudo apt-get update -q -o DPkg::Lock::Timeout=600 >&2
	fi
	# Never let a package's postinst start a daemon (docker-registry would grab
	# :5000). policy-rc.d exit 101 = "action forbidden"; restore afterwards.
	local prc=/usr/sbin/policy-rc.d prc_backup=""
	if [ -e "$prc" ]; then
		prc_backup="$(mktemp)"
		cp -p "$prc" "$prc_backup"
	fi
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$prc" >/dev/null
	$sudo chmod 755 "$prc"
	local rc=0
	log "apt-get install $*"
	$sudo apt-get install "${apt_opts[@]}" "$@" >&2 || rc=$?
	if [ "$rc" != 0 ] && [ "$need_update" = 0 ]; then
		log "install failed (rc=$rc); retrying after apt-get update"
		$sudo apt-get update -q -o DPkg::Lock::Timeout=600 >&2
		rc=0
		$sudo apt-get install "${apt_opts[@]}" "$@" >&2 || rc=$?
	fi
	if [ -n "$prc_backup" ]; then
		$sudo cp -p "$prc_backup" "$prc"
		rm -f "$prc_backup"
	else
		$sudo rm -f "$prc"
	fi
	[ "$rc" = 0 ] || die "apt-get install $* failed (rc=$rc)"
}

# go_install_cached TOOL PKG@VERSION DEST BIN [LDFLAGS]: `go install` a main
# package straight from the module proxy into DEST/BIN (for modules whose go.mod
# has no replace directives). Prints DEST/BIN; a no-op when it already exists.
go_install_cached() {
	local tool="$1" pkgver="$2" dest="$3" bin="$4" ldflags="${5:-}"
	cache_hit "$dest/$bin"
	lock "$tool"
	cache_hit "$dest/$bin"
	go_setup
	go_lock
	local start tmp
	start=$(date +%s)
	make_tmpdir "$tool" tmp
	log "building $pkgver"
	GOBIN="$tmp" go install -trimpath -ldflags="-s -w $ldflags" "$pkgver" >&2
	publish "$tmp" "$dest" "$bin"
	log "$tool built in $(elapsed "$start")"
	printf '%s\n' "$dest/$bin"
}

# drop_replaces: remove every replace directive from ./go.mod (used when building
# a module copied out of the proxy whose replaces point at ../ sibling dirs that
# the module zip does not contain).
drop_replaces() {
	local spec
	for spec in $(go mod edit -json | awk '
		/"Replace": \[/ { r = 1 }
		r && /"Old": \{/ { o = 1; path = ""; ver = ""; next }
		r && o && /"Path":/ { gsub(/[",]/, "", $2); path = $2; next }
		r && o && /"Version":/ { gsub(/[",]/, "", $2); ver = $2; next }
		r && o && /\}/ { print (ver == "" ? path : path "@" ver); o = 0 }'); do
		go mod edit -dropreplace="$spec"
	done
	if go mod edit -json | grep -q '"Replace": \['; then
		die "could not drop all replace directives from $(pwd)/go.mod"
	fi
}
