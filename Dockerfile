# wharf: one image for the servers (`node dist/server/main.js`) and the operator
# (`node dist/operator/main.js`). The TypeScript sources are compiled at build time: running them
# through Node's type stripping would load its TypeScript parser into every process (~25 MB RSS).
#
# Reproducible (hack/build-image.sh builds it so): the base image is pinned by digest (node 24.18.0,
# bookworm-slim; hack/build-image.sh refuses an unpinned FROM), dependencies come from
# package-lock.json through `npm ci`, and SOURCE_DATE_EPOCH (the last commit's time) sets every
# timestamp BuildKit writes.
ARG NODE_IMAGE=node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
ARG SOURCE_DATE_EPOCH
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY operator ./operator
COPY web ./web
RUN npm run build

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; no install scripts run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ARG SOURCE_DATE_EPOCH
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wharf" \
      org.opencontainers.image.description="Cargo registry, OCI registry, authentication service and Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${REVISION}"
# Garbage-collector settings for streaming big bodies (docs/oci.md, "Performance"): a 1 MiB
# semi-space gives socket buffers back sooner; a larger old-generation growth step stops a full
# collection every few megabytes of promoted objects while a blob streams.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=1 --heap-growing-percent=300 --enable-source-maps"
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /app/dist ./dist
# The image's own `node` user (uid 1000); the Deployments also set runAsNonRoot and a read-only root.
USER 1000:1000
EXPOSE 8080 8081
CMD ["node", "dist/server/main.js"]
