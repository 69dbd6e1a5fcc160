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
  /**
   * How long tags, manifests, blob links and repository records are served from memory before one
   * conditional GET revalidates them (storage/doc-cache.ts): the staleness bound between replicas.
   */
  metadataCacheMillis: number;
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
  metadataCacheMillis: 1000,
};

/** Fills defaults for callers that build settings by hand (tests); the schema does it for config files. */
export function ociSettings(partial: Partial<OciSettings> | Record<string, unknown> = {}): OciSettings {
  const given = partial as Partial<OciSettings>;
  return { ...OCI_DEFAULTS, ...given, gc: { ...OCI_DEFAULTS.gc, ...(given.gc ?? {}) } };
}
