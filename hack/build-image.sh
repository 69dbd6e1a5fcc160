#!/usr/bin/env bash
# Builds the wharf image reproducibly, writes its SBOM and prints its digest (for image.digest).
#
#   hack/build-image.sh [IMAGE]      # default wharf:dev, loaded into the local Docker engine
#   PUSH=1 hack/build-image.sh ghcr.io/wharf-dev/wharf:0.1.0    # pushed; the digest is the registry's
#   hack/build-image.sh --check      # only the checks that need no Docker (pinned base image)
#
# Reproducible: every FROM resolves to an image pinned by digest (refused otherwise), dependencies
# come from package-lock.json through `npm ci`, SOURCE_DATE_EPOCH is the last commit's time (BuildKit
# stamps the image config with it and, with rewrite-timestamp, clamps every file's mtime to it), and
# no provenance attestation is attached (it records the build host and time). Two builds of one
# commit give one digest.
# Writes $OUT (default dist/image): sbom.cdx.json (CycloneDX, hack/sbom.ts: the production npm
# packages of package-lock.json, what the image's `npm ci --omit=dev` installs) and digest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DOCKERFILE=${DOCKERFILE:-Dockerfile}
OUT=${OUT:-dist/image}

# check_pinned: every base image is NAME@sha256:<64 hex>, directly or through ARG NODE_IMAGE's default.
check_pinned() {
	local line image stages="" bad=0
	while read -r line; do
		image=$(awk '{print $2}' <<<"$line")
		case "$image" in
		'${NODE_IMAGE}') image=$(sed -n 's/^ARG NODE_IMAGE=//p' "$DOCKERFILE") ;;
		esac
		if [[ " $stages " == *" $image "* ]]; then
			: # an earlier stage of this Dockerfile
		elif ! [[ "$image" =~ @sha256:[0-9a-f]{64}$ ]]; then
			echo "build-image: $DOCKERFILE: base image '$image' is not pinned by digest (NAME@sha256:...)" >&2
			bad=1
		fi
		if [[ "$line" =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+) ]]; then stages="$stages ${BASH_REMATCH[1]}"; fi
	done < <(grep -E '^FROM[[:space:]]' "$DOCKERFILE")
	return "$bad"
}

check_pinned
if [ "${1:-}" = "--check" ]; then
	echo "build-image: $DOCKERFILE: every base image is pinned by digest" >&2
	exit 0
fi

IMAGE=${1:-wharf:dev}
docker buildx version >/dev/null 2>&1 || {
	echo "build-image: docker with buildx (BuildKit: SOURCE_DATE_EPOCH, rewrite-timestamp) is required" >&2
	exit 1
}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH
REVISION=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain -- server operator web package.json package-lock.json Dockerfile tsconfig*.json)" ]; then
	echo "build-image: warning: uncommitted changes; the image will not match the commit $REVISION" >&2
fi
mkdir -p "$OUT"
output="type=image,name=$IMAGE,rewrite-timestamp=true"
if [ "${PUSH:-0}" = 1 ]; then output="$output,push=true"; else output="type=docker,name=$IMAGE,rewrite-timestamp=true"; fi
docker buildx build \
	--file "$DOCKERFILE" \
	--build-arg SOURCE_DATE_EPOCH \
	--build-arg REVISION="$REVISION" \
	--provenance=false \
	--output "$output" \
	--metadata-file "$OUT/metadata.json" \
	. >&2
digest=$(sed -n 's/.*"containerimage.digest": *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p' "$OUT/metadata.json" | head -n 1)
[ -n "$digest" ] || { echo "build-image: no containerimage.digest in $OUT/metadata.json" >&2; exit 1; }
node hack/sbom.ts >"$OUT/sbom.cdx.json"
printf '%s\n' "$digest" >"$OUT/digest"
echo "build-image: $IMAGE@$digest, SBOM $OUT/sbom.cdx.json" >&2
printf '%s\n' "$digest"
