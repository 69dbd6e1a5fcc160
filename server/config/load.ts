import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { isTrustedProxyEntry } from '../http/proxies.ts';
import { configSchema } from './schema.ts';
import type { WharfConfig } from './types.ts';

/** A setting that is wrong or missing; the message names it, and where it came from. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Environment variables and the settings they override. A variable wins over the file, so one image
 * can be configured by a mounted file and adjusted per Deployment.
 */
const ENVIRONMENT: Record<string, { path: string; type: 'string' | 'integer' | 'boolean' | 'list' }> = {
  PORT: { path: 'port', type: 'integer' },
  HOST: { path: 'host', type: 'string' },
  WHARF_METRICS_PORT: { path: 'metricsPort', type: 'integer' },
  WHARF_ROLES: { path: 'roles', type: 'list' },
  WHARF_PUBLIC_URL: { path: 'publicUrl', type: 'string' },
  WHARF_TRUSTED_PROXIES: { path: 'trustedProxies', type: 'list' },
  WHARF_LOG_LEVEL: { path: 'logLevel', type: 'string' },
  WHARF_HEADERS_TIMEOUT_SECONDS: { path: 'http.headersTimeoutSeconds', type: 'integer' },
  WHARF_BODY_IDLE_TIMEOUT_SECONDS: { path: 'http.bodyIdleTimeoutSeconds', type: 'integer' },
  WHARF_BODY_TIMEOUT_SECONDS: { path: 'http.bodyTimeoutSeconds', type: 'integer' },
  WHARF_STORE: { path: 'store.driver', type: 'string' },
  WHARF_DATA_DIR: { path: 'store.dataDir', type: 'string' },
  WHARF_S3_BUCKET: { path: 'store.s3.bucket', type: 'string' },
  WHARF_S3_ENDPOINT: { path: 'store.s3.endpoint', type: 'string' },
  WHARF_S3_REGION: { path: 'store.s3.region', type: 'string' },
  WHARF_S3_FORCE_PATH_STYLE: { path: 'store.s3.forcePathStyle', type: 'boolean' },
  WHARF_S3_PREFIX: { path: 'store.s3.prefix', type: 'string' },
  WHARF_S3_ACCESS_KEY_ID: { path: 'store.s3.accessKeyId', type: 'string' },
  WHARF_S3_SECRET_ACCESS_KEY: { path: 'store.s3.secretAccessKey', type: 'string' },
  WHARF_S3_PRESIGN_DOWNLOADS: { path: 'store.s3.presignDownloads', type: 'boolean' },
  WHARF_S3_PUBLIC_ENDPOINT: { path: 'store.s3.publicEndpoint', type: 'string' },
  WHARF_BCRYPT_COST: { path: 'auth.bcryptCost', type: 'integer' },
  WHARF_PASSWORD_WORKERS: { path: 'auth.passwordWorkers', type: 'integer' },
  WHARF_PASSWORD_QUEUE_LIMIT: { path: 'auth.passwordQueueLimit', type: 'integer' },
  WHARF_SIGNUP: { path: 'auth.signup', type: 'string' },
  WHARF_ADMIN_PASSWORD: { path: 'auth.adminPassword', type: 'string' },
  WHARF_ADMIN_PASSWORD_FILE: { path: 'auth.adminPasswordFile', type: 'string' },
  WHARF_RATE_LIMIT_PER_ACCOUNT_AND_ADDRESS: { path: 'auth.rateLimit.perAccountAndAddress', type: 'integer' },
  WHARF_RATE_LIMIT_PER_ACCOUNT: { path: 'auth.rateLimit.perAccount', type: 'integer' },
  WHARF_RATE_LIMIT_PER_USER: { path: 'auth.rateLimit.perUser', type: 'integer' },
  WHARF_RATE_LIMIT_PER_ADDRESS: { path: 'auth.rateLimit.perAddress', type: 'integer' },
  WHARF_RATE_LIMIT_WINDOW_SECONDS: { path: 'auth.rateLimit.windowSeconds', type: 'integer' },
  WHARF_AUTH_URL: { path: 'registry.authUrl', type: 'string' },
  WHARF_AUTH_SERVICE_NAME: { path: 'registry.serviceName', type: 'string' },
  WHARF_AUTH_SERVICE_PASSWORD: { path: 'registry.servicePassword', type: 'string' },
  WHARF_AUTH_SERVICE_PASSWORD_FILE: { path: 'registry.servicePasswordFile', type: 'string' },
  WHARF_CREDENTIAL_CACHE_SECONDS: { path: 'registry.credentialCacheSeconds', type: 'integer' },
  WHARF_SUPERUSERS: { path: 'registry.superusers', type: 'list' },
  WHARF_OCI_ANONYMOUS_PULL: { path: 'registry.oci.anonymousPull', type: 'boolean' },
  WHARF_OCI_TOKEN_TTL_SECONDS: { path: 'registry.oci.tokenTtlSeconds', type: 'integer' },
  WHARF_OCI_MAX_BLOB_BYTES: { path: 'registry.oci.maxBlobBytes', type: 'integer' },
  WHARF_OCI_UPLOAD_EXPIRY_HOURS: { path: 'registry.oci.uploadExpiryHours', type: 'integer' },
  WHARF_OCI_GC_ENABLED: { path: 'registry.oci.gc.enabled', type: 'boolean' },
  WHARF_OCI_GC_GRACE_HOURS: { path: 'registry.oci.gc.graceHours', type: 'integer' },
  WHARF_OCI_GC_DELETE_UNTAGGED: { path: 'registry.oci.gc.deleteUntagged', type: 'boolean' },
  WHARF_OCI_GC_UNTAGGED_RETENTION_HOURS: { path: 'registry.oci.gc.untaggedRetentionHours', type: 'integer' },
  WHARF_OCI_GC_DRY_RUN: { path: 'registry.oci.gc.dryRun', type: 'boolean' },
  WHARF_OCI_METADATA_CACHE_MILLIS: { path: 'registry.oci.metadataCacheMillis', type: 'integer' },
  WHARF_OCI_BLOB_CACHE_DIR: { path: 'registry.oci.blobCache.directory', type: 'string' },
  WHARF_OCI_BLOB_CACHE_MAX_BYTES: { path: 'registry.oci.blobCache.maxBytes', type: 'integer' },
  WHARF_OCI_SERVICE: { path: 'registry.oci.service', type: 'string' },
  WHARF_OCI_REALM: { path: 'registry.oci.realm', type: 'string' },
  WHARF_OCI_SIGNING_KEY_FILE: { path: 'registry.oci.signingKeyFile', type: 'string' },
  WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: { path: 'registry.oci.signingKeyEncryptionKey', type: 'string' },
  WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY_FILE: {
    path: 'registry.oci.signingKeyEncryptionKeyFile',
    type: 'string',
  },
  WHARF_CARGO_AUTH_REQUIRED: { path: 'registry.cargo.authRequired', type: 'boolean' },
  WHARF_CARGO_MAX_CRATE_BYTES: { path: 'registry.cargo.maxCrateBytes', type: 'integer' },
  WHARF_CARGO_INDEX_REVALIDATE_MILLIS: { path: 'registry.cargo.indexRevalidateMillis', type: 'integer' },
  WHARF_CARGO_GC_ENABLED: { path: 'registry.cargo.gc.enabled', type: 'boolean' },
  WHARF_CARGO_GC_GRACE_HOURS: { path: 'registry.cargo.gc.graceHours', type: 'integer' },
  WHARF_CARGO_MIRROR: { path: 'registry.cargo.mirror.enabled', type: 'boolean' },
  WHARF_CARGO_MIRROR_UPSTREAM: { path: 'registry.cargo.mirror.upstreamIndex', type: 'string' },
  WHARF_CARGO_MIRROR_DOWNLOAD: { path: 'registry.cargo.mirror.upstreamDownload', type: 'string' },
  WHARF_CARGO_MIRROR_TTL_SECONDS: { path: 'registry.cargo.mirror.indexTtlSeconds', type: 'integer' },
  WHARF_OPENID_TOKEN_KEY: { path: 'openid.tokenEncryptionKey', type: 'string' },
  WHARF_OPENID_TOKEN_KEY_FILE: { path: 'openid.tokenEncryptionKeyFile', type: 'string' },
};

export const ENVIRONMENT_VARIABLES = Object.freeze({ ...ENVIRONMENT });

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Reads `--config`/`WHARF_CONFIG` (YAML or JSON), applies the environment, validates, fills defaults. */
export function loadConfig({
  argv = process.argv.slice(2),
  env = process.env,
}: LoadOptions = {}): WharfConfig {
  const file = configFileFrom(argv) ?? env.WHARF_CONFIG;
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  const sources = new Map<string, string>();
  for (const [name, { path: settingPath, type }] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, settingPath, convert(name, value, type));
    sources.set(settingPath, name);
  }
  return validateConfig(raw, { file, sources });
}

export function validateConfig(
  raw: unknown,
  { file, sources = new Map() }: { file?: string | undefined; sources?: Map<string, string> } = {},
): WharfConfig {
  const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false });
  addFormats.default(ajv);
  const validate = ajv.compile(configSchema);
  const config = structuredClone(raw ?? {});
  const perAccountGiven = (config as RawAuth).auth?.rateLimit?.perAccount !== undefined;
  if (!validate(config)) {
    const error = validate.errors?.[0];
    const at = (error?.instancePath ?? '').split('/').filter(Boolean).join('.');
    const setting =
      error?.keyword === 'additionalProperties'
        ? [at, String(error.params.additionalProperty)].filter(Boolean).join('.')
        : error?.keyword === 'required'
          ? [at, String(error.params.missingProperty)].filter(Boolean).join('.')
          : at;
    // An environment variable may set a whole list ("roles") whose element ("roles.1") is wrong.
    const fromEnvironment = [...sources].find(([at]) => setting === at || setting.startsWith(`${at}.`))?.[1];
    const origin = fromEnvironment ?? (file ? `in ${file}` : undefined);
    const what =
      error?.keyword === 'additionalProperties'
        ? 'is not a known setting'
        : error?.keyword === 'required'
          ? 'is required'
          : error?.keyword === 'enum'
            ? `must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
            : (error?.message ?? 'is invalid');
    throw new ConfigError(
      `configuration setting "${setting || '(root)'}"${origin ? ` (${origin})` : ''} ${what}`,
    );
  }
  migrateRateLimit(config as WharfConfig, perAccountGiven, sources);
  return resolveSecrets(config as WharfConfig);
}

type RawAuth = { auth?: { rateLimit?: Record<string, unknown> } };

/**
 * `auth.rateLimit.perUser` (failures per username, then the account was locked for everyone) became
 * `perAccount` (failures per account, then only addresses that failed are refused). An old setting
 * keeps working as perAccount; the auth role logs that it is deprecated.
 */
function migrateRateLimit(config: WharfConfig, perAccountGiven: boolean, sources: Map<string, string>): void {
  const { rateLimit } = config.auth;
  if (rateLimit.perUser === undefined) return;
  if (perAccountGiven) {
    const from = (setting: string) => {
      const variable = sources.get(`auth.rateLimit.${setting}`);
      return variable ? ` (${variable})` : '';
    };
    throw new ConfigError(
      `configuration settings "auth.rateLimit.perUser"${from('perUser')} and "auth.rateLimit.perAccount"${from('perAccount')} are both set: perUser is the deprecated name of perAccount, keep only perAccount`,
    );
  }
  rateLimit.perAccount = rateLimit.perUser;
}

function resolveSecrets(config: WharfConfig): WharfConfig {
  const badProxy = config.trustedProxies.find((entry) => !isTrustedProxyEntry(entry));
  if (badProxy !== undefined)
    throw new ConfigError(
      `configuration setting "trustedProxies" (WHARF_TRUSTED_PROXIES): ${JSON.stringify(badProxy)} is not an IP address, a CIDR or one of loopback, linklocal, uniquelocal`,
    );
  if (config.metricsPort !== 0 && config.metricsPort === config.port)
    throw new ConfigError(
      `configuration setting "metricsPort" (WHARF_METRICS_PORT) must differ from "port" (PORT): both are ${config.port}`,
    );
  if (config.store.driver === 's3' && !config.store.s3) {
    throw new ConfigError(
      'configuration setting "store.s3.bucket" (WHARF_S3_BUCKET) is required with the s3 store',
    );
  }
  if (config.auth.adminPasswordFile && !config.auth.adminPassword) {
    config.auth.adminPassword = readSecretFile('auth.adminPasswordFile', config.auth.adminPasswordFile);
  }
  if (config.registry.servicePasswordFile && !config.registry.servicePassword) {
    config.registry.servicePassword = readSecretFile(
      'registry.servicePasswordFile',
      config.registry.servicePasswordFile,
    );
  }
  for (const [index, service] of config.auth.services.entries()) {
    const setting = `auth.services[${index}] (${service.name})`;
    if (!service.password && service.passwordFile) {
      service.password = readSecretFile(`${setting}.passwordFile`, service.passwordFile);
    }
    if (!service.password && service.passwordEnv) {
      const value = process.env[service.passwordEnv];
      if (!value)
        throw new ConfigError(
          `configuration setting "${setting}.passwordEnv" names ${service.passwordEnv}, which is not set`,
        );
      service.password = value;
    }
    if (!service.password)
      throw new ConfigError(`configuration setting "${setting}" needs password, passwordFile or passwordEnv`);
    if (service.password.length < 12)
      throw new ConfigError(`configuration setting "${setting}" password must be at least 12 characters`);
  }
  const oci = config.registry.oci;
  if (oci.signingKeyEncryptionKeyFile && !oci.signingKeyEncryptionKey)
    oci.signingKeyEncryptionKey = readSecretFile(
      'registry.oci.signingKeyEncryptionKeyFile',
      oci.signingKeyEncryptionKeyFile,
    );
  const mirror = config.registry.cargo.mirror;
  if (!mirror.upstreamToken && mirror.upstreamTokenFile)
    mirror.upstreamToken = readSecretFile(
      'registry.cargo.mirror.upstreamTokenFile',
      mirror.upstreamTokenFile,
    );
  if (!mirror.upstreamToken && mirror.upstreamTokenEnv) {
    const value = process.env[mirror.upstreamTokenEnv];
    if (!value)
      throw new ConfigError(
        `configuration setting "registry.cargo.mirror.upstreamTokenEnv" names ${mirror.upstreamTokenEnv}, which is not set`,
      );
    mirror.upstreamToken = value;
  }
  const namespaces = new Set<string>();
  for (const [index, proxy] of oci.proxies.entries()) {
    const setting = `registry.oci.proxies[${index}] (${proxy.namespace})`;
    if (namespaces.has(proxy.namespace))
      throw new ConfigError(`configuration setting "${setting}": namespace ${proxy.namespace} is used twice`);
    namespaces.add(proxy.namespace);
    if (!proxy.username && proxy.usernameFile)
      proxy.username = readSecretFile(`${setting}.usernameFile`, proxy.usernameFile);
    if (!proxy.password && proxy.passwordFile)
      proxy.password = readSecretFile(`${setting}.passwordFile`, proxy.passwordFile);
    if (!proxy.password && proxy.passwordEnv) {
      const value = process.env[proxy.passwordEnv];
      if (!value)
        throw new ConfigError(
          `configuration setting "${setting}.passwordEnv" names ${proxy.passwordEnv}, which is not set`,
        );
      proxy.password = value;
    }
    if (Boolean(proxy.username) !== Boolean(proxy.password))
      throw new ConfigError(
        `configuration setting "${setting}" needs both username and a password, or neither`,
      );
  }
  resolveOpenIdSecrets(config);
  if (config.roles.includes('registry') && !config.roles.includes('auth')) {
    if (!config.registry.authUrl) {
      throw new ConfigError(
        'configuration setting "registry.authUrl" (WHARF_AUTH_URL) is required when the auth role runs elsewhere',
      );
    }
    if (!config.registry.serviceName || !config.registry.servicePassword) {
      throw new ConfigError(
        'configuration settings "registry.serviceName" and "registry.servicePassword" (WHARF_AUTH_SERVICE_NAME, WHARF_AUTH_SERVICE_PASSWORD) are required when the auth role runs elsewhere',
      );
    }
  }
  return config;
}

function resolveOpenIdSecrets(config: WharfConfig): void {
  const openid = config.openid;
  if (openid.tokenEncryptionKeyFile && !openid.tokenEncryptionKey) {
    openid.tokenEncryptionKey = readSecretFile(
      'openid.tokenEncryptionKeyFile',
      openid.tokenEncryptionKeyFile,
    );
  }
  const names = new Set<string>();
  for (const [index, provider] of openid.providers.entries()) {
    const setting = `openid.providers[${index}] (${provider.name})`;
    if (names.has(provider.name))
      throw new ConfigError(`configuration setting "${setting}.name" is used twice`);
    names.add(provider.name);
    if (!provider.clientSecret && provider.clientSecretFile) {
      provider.clientSecret = readSecretFile(`${setting}.clientSecretFile`, provider.clientSecretFile);
    }
    if (!provider.clientSecret)
      throw new ConfigError(`configuration setting "${setting}" needs clientSecret or clientSecretFile`);
    provider.redirectBaseUrl ??= config.publicUrl;
    if (!provider.redirectBaseUrl)
      throw new ConfigError(
        `configuration setting "${setting}.redirectBaseUrl" is required (or set publicUrl): the provider redirects browsers back to it`,
      );
  }
  if (openid.providers.length > 0 && !openid.tokenEncryptionKey)
    throw new ConfigError(
      'configuration setting "openid.tokenEncryptionKey" (WHARF_OPENID_TOKEN_KEY, or openid.tokenEncryptionKeyFile / WHARF_OPENID_TOKEN_KEY_FILE) is required with OpenID providers: /me shows a user\'s existing token again, so wharf keeps it encrypted with this key (32 random bytes, base64: openssl rand -base64 32)',
    );
}

function readSecretFile(setting: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `configuration setting "${setting}": cannot read ${file}: ${(error as Error).message}`,
    );
  }
}

function configFileFrom(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') {
      const next = argv[i + 1];
      if (!next) throw new ConfigError('--config needs a file name');
      return next;
    }
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return undefined;
}

/**
 * JSON (what the operator writes) is parsed as such; anything else goes to the YAML parser, loaded
 * only then: it weighs about 10 MB in a process that would otherwise never need it.
 */
function parseConfigText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
    return yaml.parse(text);
  }
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path.resolve(file), 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read configuration file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseConfigText(text);
  } catch (error) {
    throw new ConfigError(
      `configuration file ${file} is not valid YAML or JSON: ${(error as Error).message}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`configuration file ${file} must hold a mapping of settings`);
  }
  return parsed as Record<string, unknown>;
}

function convert(name: string, value: string, type: 'string' | 'integer' | 'boolean' | 'list'): unknown {
  switch (type) {
    case 'integer': {
      if (!/^-?\d+$/.test(value.trim()))
        throw new ConfigError(
          `environment variable ${name} must be an integer, got ${JSON.stringify(value)}`,
        );
      return Number(value);
    }
    case 'boolean': {
      if (/^(1|true|yes|on)$/i.test(value)) return true;
      if (/^(0|false|no|off)$/i.test(value)) return false;
      throw new ConfigError(
        `environment variable ${name} must be true or false, got ${JSON.stringify(value)}`,
      );
    }
    case 'list':
      return value
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);
    default:
      return value;
  }
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}
