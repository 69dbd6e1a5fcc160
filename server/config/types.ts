import type { OciSettings } from '../registry/oci/settings.ts';

/** The validated configuration, with every default filled in (see schema.ts for what each means). */
export interface WharfConfig {
  roles: Role[];
  host: string;
  port: number;
  metricsPort: number;
  publicUrl?: string;
  trustedProxies: string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  shutdownGraceSeconds: number;
  bodyLimitBytes: number;
  http: HttpConfig;
  store: StoreConfig;
  auth: AuthConfig;
  registry: RegistryConfig;
  openid: OpenIdConfig;
}

export type Role = 'auth' | 'registry';

export interface HttpConfig {
  headersTimeoutSeconds: number;
  bodyIdleTimeoutSeconds: number;
  bodyTimeoutSeconds: number;
}

export interface StoreConfig {
  driver: 'fs' | 's3';
  dataDir: string;
  s3?: S3Config;
}

export interface S3Config {
  bucket: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  prefix: string;
  presignDownloads: boolean;
  publicEndpoint?: string;
}

export interface ServiceConfig {
  name: string;
  password?: string;
  passwordFile?: string;
  passwordEnv?: string;
  permissions: string[];
  forwardsClientAddress: boolean;
  protocol?: 'reference' | 'restauth-0.6';
  userNames?: 'registry' | 'restauth';
  passwordMinLength?: number;
  groups?: 'shared' | 'own';
}

export interface AuthConfig {
  bcryptCost: number;
  /** Absent: derived from the CPU count (defaultPasswordWorkers). */
  passwordWorkers?: number;
  passwordQueueLimit: number;
  signup: 'admin' | 'open' | 'disabled';
  adminPassword?: string;
  adminPasswordFile?: string;
  services: ServiceConfig[];
  restauth: { pathPrefix: string };
  rateLimit: {
    perAccountAndAddress: number;
    perAccount: number;
    perAddress: number;
    windowSeconds: number;
    /** Deprecated alias of perAccount, kept so old configurations start (with a warning). */
    perUser?: number;
  };
}

export interface RegistryConfig {
  authUrl?: string;
  authRestAuthPrefix: string;
  serviceName?: string;
  servicePassword?: string;
  servicePasswordFile?: string;
  credentialCacheSeconds: number;
  superusers: string[];
  protocols: ('cargo' | 'oci')[];
  cargo: CargoConfig;
  oci: OciSettings;
}

export interface CargoConfig {
  authRequired: boolean;
  maxCrateBytes: number;
  maxUnpackedBytes: number;
  indexRevalidateMillis: number;
  presignSeconds: number;
  downloadsFlushSeconds: number;
  mirror: CargoMirrorConfig;
  gc: CargoGcConfig;
}

/** Collection of `.crate` files that publishes killed before their index update left behind. */
export interface CargoGcConfig {
  enabled: boolean;
  intervalMinutes: number;
  /** A `.crate` no index line names is deleted once it is this old (a publish takes seconds). */
  graceHours: number;
}

export interface CargoMirrorConfig {
  enabled: boolean;
  upstreamIndex: string;
  upstreamDownload?: string;
  indexTtlSeconds: number;
  upstreamTimeoutSeconds: number;
  /** Sent as `Authorization` to a private upstream (resolved from upstreamTokenFile/Env at load). */
  upstreamToken?: string;
  upstreamTokenFile?: string;
  upstreamTokenEnv?: string;
}

export interface OpenIdConfig {
  providers: OpenIdProviderConfig[];
  tokenEncryptionKey?: string;
  tokenEncryptionKeyFile?: string;
  sessionSeconds: number;
  loginTimeoutSeconds: number;
}

export interface OpenIdProviderConfig {
  name: string;
  issuerUrl: string;
  clientId: string;
  clientSecret?: string;
  clientSecretFile?: string;
  additionalScopes: string[];
  redirectBaseUrl?: string;
  usernameClaim: string;
  groupsClaim: string;
  authorizedGroups: string[];
  authorizedUsers: string[];
  accountPrefix: string;
  allowInsecureRequests: boolean;
}
