/**
 * The configuration file's JSON schema, section by section. Defaults live here too, so the schema
 * is the one place that says what a setting is; docs/configuration.md and the README table follow it.
 */

const storeSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    driver: { enum: ['fs', 's3'], default: 'fs', description: 'Where all state lives (docs/storage.md).' },
    dataDir: {
      type: 'string',
      minLength: 1,
      default: './data',
      description: 'Root directory of the fs store.',
    },
    s3: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bucket: { type: 'string', minLength: 3, maxLength: 63, description: 'Bucket holding every object.' },
        endpoint: {
          type: 'string',
          format: 'uri',
          description: 'S3 API URL of a non-AWS server (MinIO, Ceph RGW, R2); empty means AWS S3.',
        },
        region: { type: 'string', minLength: 1, default: 'us-east-1', description: 'Signing region.' },
        forcePathStyle: {
          type: 'boolean',
          default: false,
          description:
            'Address the bucket as `endpoint/bucket` instead of `bucket.endpoint` (MinIO needs it).',
        },
        accessKeyId: {
          type: 'string',
          minLength: 1,
          description: "Access key; without one, the AWS SDK's default chain (AWS_ACCESS_KEY_ID...).",
        },
        secretAccessKey: { type: 'string', minLength: 1, description: 'Secret key, with accessKeyId.' },
        prefix: {
          type: 'string',
          pattern: '^([^/]+/)*$',
          default: '',
          description: 'Key prefix ending in `/`, to share a bucket.',
        },
        presignDownloads: {
          type: 'boolean',
          default: false,
          description: 'Let registries redirect downloads to presigned S3 URLs.',
        },
        publicEndpoint: {
          type: 'string',
          format: 'uri',
          description: 'Endpoint put in presigned URLs when clients reach S3 at another address than wharf.',
        },
      },
      required: ['bucket'],
    },
  },
} as const;

const serviceSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
    password: { type: 'string', minLength: 12 },
    passwordFile: { type: 'string', minLength: 1 },
    passwordEnv: { type: 'string', minLength: 1 },
    permissions: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
  },
  required: ['name'],
} as const;

const authSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bcryptCost: { type: 'integer', minimum: 10, maximum: 15, default: 10 },
    signup: { enum: ['admin', 'open', 'disabled'], default: 'admin' },
    adminPassword: { type: 'string', minLength: 8 },
    adminPasswordFile: { type: 'string', minLength: 1 },
    services: { type: 'array', items: serviceSchema, default: [] },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      properties: {
        perUser: { type: 'integer', minimum: 1, default: 10 },
        perAddress: { type: 'integer', minimum: 1, default: 60 },
        windowSeconds: { type: 'integer', minimum: 1, default: 60 },
      },
      default: {},
    },
  },
  default: {},
} as const;

const registrySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** Base URL of the AuthService; empty means "this process" (all roles in one). */
    authUrl: { type: 'string', format: 'uri' },
    serviceName: { type: 'string', minLength: 1 },
    servicePassword: { type: 'string', minLength: 1 },
    servicePasswordFile: { type: 'string', minLength: 1 },
    /** How long a verified credential is trusted without asking the AuthService again. */
    credentialCacheSeconds: { type: 'integer', minimum: 0, maximum: 600, default: 10 },
    superusers: { type: 'array', items: { type: 'string' }, default: [] },
    protocols: {
      type: 'array',
      items: { enum: ['cargo', 'oci'] },
      uniqueItems: true,
      default: ['cargo', 'oci'],
    },
    cargo: { type: 'object', default: {} },
    oci: { type: 'object', default: {} },
  },
  default: {},
} as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    roles: {
      type: 'array',
      items: { enum: ['auth', 'registry'] },
      minItems: 1,
      uniqueItems: true,
      default: ['auth', 'registry'],
    },
    host: { type: 'string', minLength: 1, default: '0.0.0.0' },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    /** The URL clients use to reach this server (behind an ingress it differs from host:port). */
    publicUrl: { type: 'string', format: 'uri' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    /** Seconds in-flight requests get to finish on SIGTERM. */
    shutdownGraceSeconds: { type: 'integer', minimum: 0, maximum: 3600, default: 25 },
    bodyLimitBytes: { type: 'integer', minimum: 1024, default: 10 * 1024 * 1024 },
    store: { ...storeSchema, default: {} },
    auth: authSchema,
    registry: registrySchema,
    openid: { type: 'object', default: {} },
  },
} as const;
