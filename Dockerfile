# wharf: one image for the servers (`node server/main.ts`) and the operator (`node operator/main.ts`).
# Node 24 runs the TypeScript sources directly (type stripping): no build step, no dev dependencies.

FROM node:24-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; no install scripts run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="wharf" \
      org.opencontainers.image.description="Cargo registry, OCI registry, authentication service and Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY server ./server
COPY operator ./operator
# The image's own `node` user (uid 1000); the Deployments also set runAsNonRoot and a read-only root.
USER 1000:1000
EXPOSE 8080 8081
CMD ["node", "server/main.ts"]
