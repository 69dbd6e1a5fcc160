import type { Logger } from 'pino';
import type { AccessPolicy } from '../../access/policy.ts';
import { TokenSealer } from '../../auth/openid/token-sealer.ts';
import type { CredentialResolver } from '../../identity/credential-resolver.ts';
import type { IdentityClient } from '../../identity/principal.ts';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import type { Maintenance } from './gc.ts';
import { OciMetrics } from './oci-metrics.ts';
import { RepositoryStore } from './permissions.ts';
import { ProxyMetrics } from './proxy/metrics.ts';
import { Proxies, warnNamespaceCollisions } from './proxy/proxies.ts';
import type { RobotStore } from './robots.ts';
import type { OciSettings } from './settings.ts';
import { ActivityLog, PullRecorder } from './storage/activity.ts';
import { BlobStore } from './storage/blobs.ts';
import { DocCache } from './storage/doc-cache.ts';
import { LocalBlobCache } from './storage/local-blob-cache.ts';
import { ManifestStore } from './storage/manifests.ts';
import { UploadManager } from './storage/uploads.ts';
import { SigningKeys } from './token/keys.ts';
import { TokenService } from './token/tokens.ts';

/** Everything the OCI plugins share, built once per server. */
export interface OciServices {
  settings: OciSettings;
  publicUrl: string | undefined;
  store: ObjectStore;
  logger: Logger;
  metrics: Metrics;
  blobs: BlobStore;
  uploads: UploadManager;
  manifests: ManifestStore;
  /** Untag and pull times of manifests, for GC's retention. */
  activity: ActivityLog;
  /** Records pulls by digest off the request path (flushed in the background). */
  pulls: PullRecorder;
  repositories: RepositoryStore;
  robots: RobotStore;
  keys: SigningKeys;
  tokens: TokenService;
  /** Turns credentials into principals (the registry role's one resolver, shared with cargo). */
  resolver: CredentialResolver;
  /** Decides what a principal may do (server/access/policy.ts). */
  policy: AccessPolicy;
  identity: IdentityClient;
  /** Pull-through caches (`registry.oci.proxies`), by namespace. */
  proxies: Proxies;
  proxyMetrics: ProxyMetrics;
  /** Set by the plugin once background maintenance is started. */
  maintenance: Maintenance;
  /** Blob bytes from S3 on local disk (`registry.oci.blobCache.directory`); undefined when off. */
  blobCache: LocalBlobCache | undefined;
}

export async function createOciServices(options: {
  settings: OciSettings;
  publicUrl: string | undefined;
  store: ObjectStore;
  identity: IdentityClient;
  resolver: CredentialResolver;
  policy: AccessPolicy;
  robots: RobotStore;
  metrics: Metrics;
  logger: Logger;
}): Promise<OciServices> {
  const { settings } = options;
  const cache = new DocCache(options.store, { freshMillis: settings.metadataCacheMillis });
  // Everything OCI writes goes through the watched store, so this replica never serves what it replaced.
  const store = cache.watching();
  const blobs = new BlobStore(store, cache);
  const { robots } = options;
  const ociMetrics = new OciMetrics(options.metrics, store, options.logger);
  const keys = new SigningKeys(store, {
    ...(settings.signingKeyFile ? { signingKeyFile: settings.signingKeyFile } : {}),
    ...(settings.signingKeyEncryptionKey
      ? { sealer: new TokenSealer(settings.signingKeyEncryptionKey, 'registry.oci.signingKeyEncryptionKey') }
      : {}),
    // "Development mode": with the fs store, whoever reads the store reads the configuration too
    // (one host, one user), so an unsealed generated key is allowed there (docs/oci.md).
    allowUnsealed: store.kind === 'fs',
    logger: options.logger,
    rotationHours: settings.keyRotationHours,
    retainSeconds: Math.max(settings.tokenTtlSeconds, settings.refreshTokenTtlSeconds) + 60,
  });
  await keys.load();
  const activity = new ActivityLog(store);
  const manifests = new ManifestStore(store, blobs, cache, activity);
  const pulls = new PullRecorder(activity, options.logger);
  const proxyMetrics = new ProxyMetrics(options.metrics);
  const proxies = new Proxies(settings.proxies, {
    store,
    blobs,
    manifests,
    pulls,
    metrics: proxyMetrics,
    logger: options.logger.child({ component: 'oci-proxy' }),
    maxManifestBytes: settings.maxManifestBytes,
    maxBlobBytes: settings.maxBlobBytes,
  });
  void warnNamespaceCollisions(settings.proxies, options.identity, options.logger);
  const { directory } = settings.blobCache;
  // On the fs store the blobs are on a local disk already: a second copy would gain nothing.
  if (directory && options.store.kind === 'fs')
    options.logger.info('registry.oci.blobCache is ignored on the fs store: blobs are local files already');
  const blobCache =
    directory && options.store.kind !== 'fs'
      ? await LocalBlobCache.open(
          directory,
          options.store,
          settings.blobCache,
          options.logger,
          options.metrics,
        )
      : undefined;
  return {
    blobCache,
    settings,
    publicUrl: options.publicUrl,
    store,
    logger: options.logger,
    metrics: options.metrics,
    blobs,
    uploads: new UploadManager(
      store,
      blobs,
      { maxBlobBytes: settings.maxBlobBytes },
      ociMetrics.uploadRequests,
    ),
    manifests,
    activity,
    pulls,
    proxies,
    proxyMetrics,
    repositories: new RepositoryStore(store, cache),
    robots,
    keys,
    tokens: new TokenService(keys, {
      issuer: settings.issuer,
      service: settings.service,
      ttlSeconds: settings.tokenTtlSeconds,
      refreshTtlSeconds: settings.refreshTokenTtlSeconds,
    }),
    resolver: options.resolver,
    policy: options.policy,
    identity: options.identity,
    maintenance: {
      runOnce: async () => {
        throw new Error('maintenance not started');
      },
      stop() {},
    },
  };
}
