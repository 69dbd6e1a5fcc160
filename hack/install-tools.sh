#!/usr/bin/env bash
# Install every external tool the test suite needs (for CI and fresh machines).
#
#   hack/install-tools.sh              # all tools
#   hack/install-tools.sh minio etcd   # only these
#
# Each tool comes from its own hack/<tool>.sh (cached under $WHARF_CACHE, default
# ~/.cache/wharf; warm cache = a few seconds in total). Writes
# $WHARF_CACHE/tools.env (WHARF_<TOOL>_BIN=/abs/path lines, sourceable) and
# prints its path as the last stdout line; the summary goes to stderr.
# Exit status: non-zero if a required tool failed (optional ones only warn).
# Cold cache on 2 cores: ~15 min (kube-apiserver ~7, minio ~4, helm ~2).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Order matters on 2 cores: cheap apt installs first, then Go builds one by one,
# heaviest last. "optional" tools only warn when they fail.
ALL_TOOLS=(minio skopeo chromium restauthclient distribution conformance crane oras helm prometheus-operator-crds etcd kube-apiserver)
OPTIONAL_TOOLS=" distribution oras "

if [ "$#" -gt 0 ]; then
	tools=("$@")
else
	tools=("${ALL_TOOLS[@]}")
fi

mkdir -p "$WHARF_CACHE"
env_file="$WHARF_CACHE/tools.env"
# keep entries for tools not run this time
declare -A paths=()
if [ -f "$env_file" ]; then
	while IFS='=' read -r k v; do
		[[ "$k" == WHARF_*_BIN ]] && paths[$k]="$v"
	done <"$env_file"
fi

summary=()
failed_required=()
total_start=$(date +%s)
for tool in "${tools[@]}"; do
	script="$WHARF_HACK_DIR/$tool.sh"
	[ -f "$script" ] || die "unknown tool '$tool' (no $script)"
	key="WHARF_$(printf '%s' "$tool" | tr 'a-z-' 'A-Z_')_BIN"
	start=$(date +%s)
	out_file="$(mktemp)"
	rc=0
	bash "$script" </dev/null >"$out_file" || rc=$?
	path="$(tail -n 1 "$out_file")"
	rm -f "$out_file"
	took="$(elapsed "$start")"
	if [ "$rc" = 0 ] && [ -n "$path" ] && [ -x "$path" ]; then
		paths[$key]="$path"
		summary+=("$(printf '  %-15s ok    %7s  %s' "$tool" "$took" "$path")")
	else
		if [[ "$OPTIONAL_TOOLS" == *" $tool "* ]]; then
			summary+=("$(printf '  %-15s WARN  %7s  failed (rc=%s), optional' "$tool" "$took" "$rc")")
		else
			summary+=("$(printf '  %-15s FAIL  %7s  failed (rc=%s)' "$tool" "$took" "$rc")")
			failed_required+=("$tool")
		fi
	fi
done

tmp_env="$(mktemp "$WHARF_CACHE/.tools.env.XXXXXX")"
{
	echo "# written by hack/install-tools.sh; source it to get the tool paths"
	for k in $(printf '%s\n' "${!paths[@]}" | sort); do
		printf '%s=%s\n' "$k" "${paths[$k]}"
	done
} >"$tmp_env"
mv -f "$tmp_env" "$env_file"

{
	echo "tools (cache: $WHARF_CACHE, total $(elapsed "$total_start")):"
	printf '%s\n' "${summary[@]}"
	echo "paths written to $env_file"
} >&2

if [ "${#failed_required[@]}" -gt 0 ]; then
	die "required tool(s) failed: ${failed_required[*]}"
fi
printf '%s\n' "$env_file"
