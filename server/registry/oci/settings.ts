/** The `registry.oci` settings (schema and defaults in server/config/schema.ts). */
export interface OciSettings {
  anonymousPull: boolean;
  tokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  maxManifestBytes: number;
  maxBlobBytes: number;
  uploadExpiryHours: number;
  gc: { enabled: boolean; graceHours: number; intervalMinutes: number };
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
}

export const OCI_DEFAULTS: OciSettings = {
  anonymousPull: true,
  tokenTtlSeconds: 300,
  refreshTokenTtlSeconds: 7 * 24 * 3600,
  maxManifestBytes: 4 * 1024 * 1024,
  maxBlobBytes: 64 * 1024 * 1024 * 1024,
  uploadExpiryHours: 24,
  gc: { enabled: true, graceHours: 24, intervalMinutes: 60 },
  service: 'wharf',
  issuer: 'wharf',
  keyRotationHours: 30 * 24,
};

/** Fills defaults for callers that build settings by hand (tests); the schema does it for config files. */
export function ociSettings(partial: Partial<OciSettings> | Record<string, unknown> = {}): OciSettings {
  const given = partial as Partial<OciSettings>;
  return { ...OCI_DEFAULTS, ...given, gc: { ...OCI_DEFAULTS.gc, ...(given.gc ?? {}) } };
}
