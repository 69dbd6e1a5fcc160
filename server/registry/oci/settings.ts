import type { BlobCacheSettings } from './storage/local-blob-cache.ts';

/** The `registry.oci` settings (schema and defaults in server/config/schema.ts). */
export interface OciSettings {
  anonymousPull: boolean;
  tokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  maxManifestBytes: number;
  maxBlobBytes: number;
  uploadExpiryHours: number;
  gc: OciGcSettings;
  /** `service` in challenges and the JWT `aud`. */
  service: string;
  /** JWT `iss`. */
  issuer: string;
  /** Token endpoint URL in challenges; by default derived from publicUrl or the request's Host. */
  realm?: string;
  signingKeyFile?: string;
  /** Seals generated signing keys in the store (AES-256-GCM); see token/keys.ts. */
  signingKeyEncryptionKey?: string;
  signingKeyEncryptionKeyFile?: string;
  keyRotationHours: number;
  /** Pull-through caches of upstream registries, one namespace each (docs/oci.md, "Proxy cache"). */
  proxies: OciProxySettings[];
  /**
   * How long tags, manifests, blob links and repository records are served from memory before one
   * conditional GET revalidates them (storage/doc-cache.ts): the staleness bound between replicas.
   */
  metadataCacheMillis: number;
  /** Blob bytes pulled from S3 kept on local disk (storage/local-blob-cache.ts). */
  blobCache: BlobCacheSettings;
}

/** `registry.oci.proxies[]`: one upstream registry served read-only under a namespace of this one. */
export interface OciProxySettings {
  /** `dockerhub`: `dockerhub/library/nginx` here is `library/nginx` upstream. */
  namespace: string;
  /** Base URL of the upstream registry (`https://registry-1.docker.io`). */
  upstream: string;
  /** Resolved from usernameFile when the configuration is loaded. */
  username?: string;
  usernameFile?: string;
  /** Resolved from password, passwordFile or passwordEnv when the configuration is loaded. */
  password?: string;
  passwordFile?: string;
  passwordEnv?: string;
  /** Upstream repository patterns (`*` one path component, `**` any); empty allows every repository. */
  repositories: string[];
  /** Docker Hub's rule: a one-component name is an official image under `library/`. */
  library: boolean;
  /** How long a manifest fetched by tag is served before a HEAD revalidates it. */
  manifestTtlSeconds: number;
  /** Whether anonymous callers may pull through this proxy (default: `registry.oci.anonymousPull`). */
  anonymousPull?: boolean;
  /** Timeout of each upstream request until its response headers (bodies may stream longer). */
  timeoutSeconds: number;
  /** GC deletes cached manifests not pulled for this long (0 keeps them). */
  retentionHours: number;
  /** GC deletes the least recently pulled manifests beyond this many bytes of cached content (0: none). */
  quotaBytes: number;
}

/** `registry.oci.gc`: what GC may delete and when (docs/oci.md, "Garbage collection"). */
export interface OciGcSettings {
  enabled: boolean;
  /** Uploads, blobs and links younger than this are never touched (a push in progress). */
  graceHours: number;
  intervalMinutes: number;
  /** Whether manifests no tag reaches are deleted at all (distribution: no). */
  deleteUntagged: boolean;
  /** How long a manifest stays after it lost its last tag, and after its last pull by digest. */
  untaggedRetentionHours: number;
  /** Background runs only log what they would delete. */
  dryRun: boolean;
}

export const OCI_DEFAULTS: OciSettings = {
  anonymousPull: true,
  tokenTtlSeconds: 300,
  refreshTokenTtlSeconds: 7 * 24 * 3600,
  maxManifestBytes: 4 * 1024 * 1024,
  maxBlobBytes: 64 * 1024 * 1024 * 1024,
  uploadExpiryHours: 24,
  gc: {
    enabled: true,
    graceHours: 24,
    intervalMinutes: 60,
    deleteUntagged: false,
    untaggedRetentionHours: 168,
    dryRun: false,
  },
  service: 'wharf',
  issuer: 'wharf',
  keyRotationHours: 30 * 24,
  proxies: [],
  metadataCacheMillis: 1000,
  blobCache: { maxBytes: 10 * 1024 ** 3, minBlobBytes: 1024 * 1024 },
};

export const PROXY_DEFAULTS = {
  repositories: [] as string[],
  library: false,
  manifestTtlSeconds: 300,
  timeoutSeconds: 30,
  retentionHours: 720,
  quotaBytes: 0,
};

/** Fills defaults for callers that build settings by hand (tests); the schema does it for config files. */
export function ociSettings(partial: Partial<OciSettings> | Record<string, unknown> = {}): OciSettings {
  const given = partial as Partial<OciSettings>;
  return {
    ...OCI_DEFAULTS,
    ...given,
    gc: { ...OCI_DEFAULTS.gc, ...(given.gc ?? {}) },
    blobCache: { ...OCI_DEFAULTS.blobCache, ...(given.blobCache ?? {}) },
    proxies: (given.proxies ?? []).map((proxy) => ({ ...PROXY_DEFAULTS, ...proxy })),
  };
}
