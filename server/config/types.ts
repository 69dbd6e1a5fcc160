/** The validated configuration, with every default filled in (see schema.ts for what each means). */
export interface WharfConfig {
  roles: Role[];
  host: string;
  port: number;
  publicUrl?: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  shutdownGraceSeconds: number;
  bodyLimitBytes: number;
  store: StoreConfig;
  auth: AuthConfig;
  registry: RegistryConfig;
  openid: Record<string, unknown>;
}

export type Role = 'auth' | 'registry';

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
}

export interface AuthConfig {
  bcryptCost: number;
  signup: 'admin' | 'open' | 'disabled';
  adminPassword?: string;
  adminPasswordFile?: string;
  services: ServiceConfig[];
  rateLimit: { perUser: number; perAddress: number; windowSeconds: number };
}

export interface RegistryConfig {
  authUrl?: string;
  serviceName?: string;
  servicePassword?: string;
  servicePasswordFile?: string;
  credentialCacheSeconds: number;
  superusers: string[];
  protocols: ('cargo' | 'oci')[];
  cargo: Record<string, unknown>;
  oci: Record<string, unknown>;
}
