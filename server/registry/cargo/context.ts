import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { WharfConfig } from '../../config/types.ts';
import { publicBaseUrl } from '../../http/proxies.ts';
import type { IdentityClient } from '../../identity/principal.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { AccessError, principalOf, sendUnauthorized } from './access.ts';
import type { CargoMetrics } from './cargo-metrics.ts';
import type { StoredFiles } from './stored-files.ts';

/** What every Cargo route plugin gets passed. */
export interface CargoContext {
  config: WharfConfig;
  store: ObjectStore;
  metrics: Metrics;
  logger: Logger;
  identity: IdentityClient;
  files: StoredFiles;
  cargoMetrics: CargoMetrics;
}

/** The URL clients reach this server at: the configured public URL, else what the request says. */
export function baseUrl(config: WharfConfig, request: FastifyRequest): string {
  return publicBaseUrl(config.publicUrl, request);
}

/**
 * Read access (config.json, index, downloads, search): open unless `authRequired`; then a valid token
 * is needed and a missing one gets RFC 3139's 401 with the page that explains how to get one.
 * Returns false when it has answered the request itself.
 */
export async function allowRead(
  context: CargoContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<boolean> {
  if (!context.config.registry.cargo.authRequired) return true;
  try {
    const principal = await principalOf(request, context.identity);
    if (principal) return true;
  } catch (error) {
    if (!(error instanceof AccessError)) throw error;
    reply.code(403).send({ errors: [{ detail: error.message }] });
    return false;
  }
  sendUnauthorized(
    reply,
    `${baseUrl(context.config, request)}/me`,
    'this registry is private: get a token (see the login URL) and run `cargo login`',
  );
  return false;
}
