import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../../access/policy.ts';
import type { WharfConfig } from '../../config/types.ts';
import { publicBaseUrl } from '../../http/proxies.ts';
import type { CredentialResolver } from '../../identity/credential-resolver.ts';
import type { IdentityClient } from '../../identity/principal.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import type { CargoMetrics } from './cargo-metrics.ts';
import type { DownloadCounter } from './downloads.ts';
import type { CrateCatalog } from './search.ts';
import type { StoredFiles } from './stored-files.ts';

/** What every Cargo route plugin gets passed. */
export interface CargoContext {
  config: WharfConfig;
  store: ObjectStore;
  metrics: Metrics;
  logger: Logger;
  /** Users and groups (crate owners); credentials go through `resolver`. */
  identity: IdentityClient;
  resolver: CredentialResolver;
  policy: AccessPolicy;
  files: StoredFiles;
  cargoMetrics: CargoMetrics;
  /** Downloads per version per day, counted in memory and flushed in batches (owned by the role). */
  downloads: DownloadCounter;
  /** Names, descriptions and keywords of every crate, for search. */
  catalog: CrateCatalog;
}

/** The URL clients reach this server at: the configured public URL, else what the request says. */
export function baseUrl(config: WharfConfig, request: FastifyRequest): string {
  return publicBaseUrl(config.publicUrl, request);
}

/** Route config of the read routes (config.json, index, downloads, search, owner lists). */
export const READ = { access: { operation: 'cargo.read' } } as const;
