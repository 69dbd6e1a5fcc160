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
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$',
      description: 'RestAuth service name (the HTTP Basic username).',
    },
    password: { type: 'string', minLength: 12, description: 'Its password (or passwordFile, passwordEnv).' },
    passwordFile: { type: 'string', minLength: 1, description: 'File holding the password.' },
    passwordEnv: { type: 'string', minLength: 1, description: 'Environment variable holding the password.' },
    permissions: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description:
        'Operations it may call, e.g. user_verify_password, token_verify, user* (docs/identity.md).',
    },
    forwardsClientAddress: {
      type: 'boolean',
      default: false,
      description:
        "Trust its X-Forwarded-For as the end user's address for password rate limits (a registry, a wiki that relays it); otherwise ignored.",
    },
    protocol: {
      enum: ['reference', 'restauth-0.6'],
      default: 'reference',
      description:
        'RestAuth revision it speaks: `reference` (restauth-api.txt: 200, 400) or `restauth-0.6` (the released server and its client libraries: 204, 412, `/test/` dry runs, content negotiation).',
    },
    userNames: {
      enum: ['registry', 'restauth'],
      default: 'registry',
      description:
        'Names it may give new users: `registry` names, or also RestAuth names with spaces and non-ASCII letters (their users own no registry namespace).',
    },
    passwordMinLength: {
      type: 'integer',
      minimum: 6,
      maximum: 256,
      default: 8,
      description: 'Shortest password it may set for a user (6 for users moved from a RestAuth server).',
    },
    groups: {
      enum: ['shared', 'own'],
      default: 'shared',
      description:
        '`shared`: the groups registries see (namespace owners); `own`: groups only this service sees, as RestAuth keeps them per service.',
    },
  },
  required: ['name'],
} as const;

const authSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bcryptCost: {
      type: 'integer',
      minimum: 10,
      maximum: 15,
      default: 10,
      description: 'bcrypt cost of new password hashes.',
    },
    passwordWorkers: {
      type: 'integer',
      minimum: 0,
      maximum: 64,
      description:
        'Threads that run bcrypt. Default: CPUs (container limit) minus one, 1 to 4. 0 runs bcrypt on the event loop (docs/identity.md).',
    },
    passwordQueueLimit: {
      type: 'integer',
      minimum: 0,
      default: 64,
      description:
        'Password hashes/checks that may wait for a bcrypt thread; more answer 503 with Retry-After.',
    },
    signup: {
      enum: ['admin', 'open', 'disabled'],
      default: 'admin',
      description: 'Who may call Ktra new_user: an administrator, anyone, or nobody.',
    },
    adminPassword: {
      type: 'string',
      minLength: 8,
      description: 'Creates the user admin (administrator) if missing; never logged.',
    },
    adminPasswordFile: { type: 'string', minLength: 1, description: 'File holding adminPassword.' },
    services: { type: 'array', items: serviceSchema, default: [], description: 'RestAuth services.' },
    restauth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        pathPrefix: {
          type: 'string',
          pattern: '^(/[A-Za-z0-9._~-]+)*$',
          default: '/restauth',
          description:
            'Where the RestAuth API is served; `""` serves it at the root (`/users/`, `/groups/`), which released RestAuth clients need (docs/identity.md).',
        },
      },
      default: {},
    },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      properties: {
        perAccountAndAddress: {
          type: 'integer',
          minimum: 1,
          default: 10,
          description:
            'Failed password checks of one account from one address (or one RestAuth service that relays no address) per window; then that address waits until the window ends.',
        },
        perAccount: {
          type: 'integer',
          minimum: 1,
          default: 50,
          description:
            'Failed password checks of one account from all addresses per window; past it, only addresses that have not failed for the account in their window are checked (docs/identity.md).',
        },
        perAddress: {
          type: 'integer',
          minimum: 1,
          default: 100,
          description: 'Failed password checks from one client address across all accounts per window.',
        },
        windowSeconds: {
          type: 'integer',
          minimum: 1,
          default: 900,
          description:
            'How long failures count: each counter (kept in the store) opens its window at its first failure.',
        },
        perUser: {
          type: 'integer',
          minimum: 1,
          description: 'Deprecated: the former name of perAccount (it sets perAccount).',
        },
      },
      default: {},
    },
  },
  default: {},
} as const;

/** The Cargo registry (docs/cargo.md). */
const cargoSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    authRequired: {
      type: 'boolean',
      default: false,
      description: 'RFC 3139: config.json, index files and downloads need a token, not only the Web API.',
    },
    maxCrateBytes: {
      type: 'integer',
      minimum: 1024,
      default: 10 * 1024 * 1024,
      description: 'Largest .crate accepted by `cargo publish` (crates.io: 10 MiB).',
    },
    maxUnpackedBytes: {
      type: 'integer',
      minimum: 1024,
      default: 512 * 1024 * 1024,
      description: 'Largest unpacked size of a .crate (a guard against gzip bombs).',
    },
    indexRevalidateMillis: {
      type: 'integer',
      minimum: 0,
      maximum: 60000,
      default: 500,
      description:
        "How long a replica trusts an index file's ETag, and its list of crates for search, before asking the store again (0: every request). The replica that took a publish sees it at once; others within this bound.",
    },
    presignSeconds: {
      type: 'integer',
      minimum: 10,
      maximum: 604800,
      default: 300,
      description: 'Lifetime of presigned .crate download URLs (with store.s3.presignDownloads).',
    },
    downloadsFlushSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: 10,
      description:
        'How often a replica adds the downloads it counted in memory to the store (one conditional write per downloaded crate); shutdown flushes the rest.',
    },
    mirror: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: {
          type: 'boolean',
          default: false,
          description:
            'Serves /mirror/index/ (read-through sparse index) and /ktra/api/v1/mirror/… downloads.',
        },
        upstreamIndex: {
          type: 'string',
          format: 'uri',
          default: 'https://index.crates.io/',
          description: "The upstream sparse index (its config.json's `dl` tells where .crate files are).",
        },
        upstreamDownload: {
          type: 'string',
          pattern: '^https?://',
          description: "Overrides the upstream's `dl` template (crates.io: https://static.crates.io/crates).",
        },
        indexTtlSeconds: {
          type: 'integer',
          minimum: 0,
          maximum: 86400,
          default: 30,
          description: 'How long a cached upstream index file is served before it is revalidated (ETag).',
        },
        upstreamTimeoutSeconds: {
          type: 'integer',
          minimum: 1,
          maximum: 600,
          default: 30,
          description: 'Timeout of each request to the upstream registry.',
        },
        upstreamToken: {
          type: 'string',
          minLength: 1,
          description:
            'Token for a private upstream (sent as cargo sends it: to the index, and to downloads when its config.json says auth-required).',
        },
        upstreamTokenFile: { type: 'string', minLength: 1, description: 'File holding upstreamToken.' },
        upstreamTokenEnv: {
          type: 'string',
          minLength: 1,
          description: 'Environment variable holding upstreamToken.',
        },
      },
      default: {},
    },
    gc: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: {
          type: 'boolean',
          default: true,
          description: 'Collect `.crate` files left by publishes killed before their index update',
        },
        intervalMinutes: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 60,
          description: 'How often the collection runs (one replica at a time: a lease in the store)',
        },
        graceHours: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 24,
          description: 'A `.crate` no index line names is deleted once it is this old',
        },
      },
      default: {},
    },
  },
  default: {},
} as const;

/** OCI registry settings (server/registry/oci/settings.ts documents each; docs/oci.md for operators). */
const ociSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    anonymousPull: { type: 'boolean', default: true, description: 'Anonymous pull of public repositories' },
    tokenTtlSeconds: {
      type: 'integer',
      minimum: 60,
      maximum: 86400,
      default: 300,
      description: 'Lifetime of registry JWTs (Docker token auth)',
    },
    refreshTokenTtlSeconds: {
      type: 'integer',
      minimum: 60,
      default: 604800,
      description: 'Lifetime of refresh tokens (offline_token / access_type=offline)',
    },
    maxManifestBytes: {
      type: 'integer',
      minimum: 1024,
      maximum: 64 * 1024 * 1024,
      default: 4 * 1024 * 1024,
      description: 'Largest manifest accepted (413 above)',
    },
    maxBlobBytes: {
      type: 'integer',
      minimum: 1,
      default: 64 * 1024 * 1024 * 1024,
      description: 'Largest blob accepted (413 above); also sizes multipart parts under 10,000',
    },
    uploadExpiryHours: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 24,
      description: 'Idle upload sessions older than this are discarded by GC',
    },
    gc: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: {
          type: 'boolean',
          default: true,
          description:
            'Online garbage collection of expired uploads, unreferenced blobs (and untagged manifests)',
        },
        graceHours: {
          type: 'number',
          minimum: 0,
          default: 24,
          description:
            'GC never touches an upload, blob or manifest younger than this (protects pushes in progress)',
        },
        intervalMinutes: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 60,
          description: 'How often GC runs (one replica at a time: a lease in the store)',
        },
        deleteUntagged: {
          type: 'boolean',
          default: false,
          description:
            'Delete manifests no tag reaches once untagged and unpulled for untaggedRetentionHours (docs/oci.md: why off)',
        },
        untaggedRetentionHours: {
          type: 'number',
          minimum: 1,
          default: 168,
          description:
            'With deleteUntagged: how long a manifest stays after it lost its last tag and after its last pull by digest',
        },
        dryRun: {
          type: 'boolean',
          default: false,
          description: 'Background GC only logs what it would delete',
        },
      },
      default: {},
    },
    service: {
      type: 'string',
      minLength: 1,
      default: 'wharf',
      description: 'Token `service` / JWT audience',
    },
    issuer: { type: 'string', minLength: 1, default: 'wharf', description: 'JWT issuer' },
    realm: {
      type: 'string',
      format: 'uri',
      description: 'Token endpoint URL in challenges; default publicUrl + /v2/auth',
    },
    signingKeyFile: {
      type: 'string',
      minLength: 1,
      description:
        'ES256 signing key (PEM PKCS#8 P-256); nothing is then written to the store. Default: generated and shared through the store',
    },
    signingKeyEncryptionKey: {
      type: 'string',
      minLength: 32,
      description:
        'Required with the s3 store and no signingKeyFile: 32 bytes (base64 or hex) sealing the generated signing keys in the store (docs/oci.md)',
    },
    signingKeyEncryptionKeyFile: {
      type: 'string',
      minLength: 1,
      description: 'File holding signingKeyEncryptionKey',
    },
    keyRotationHours: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 720,
      description: 'Signing-key rotation period (old keys stay published while their tokens live)',
    },
    proxies: {
      type: 'array',
      default: [],
      description:
        'Pull-through caches of upstream registries, one namespace each (docs/oci.md, "Proxy cache")',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          namespace: {
            type: 'string',
            pattern: '^[a-z0-9]+(?:[._-][a-z0-9]+)*$',
            maxLength: 64,
            description:
              'Namespace here (`dockerhub`): `dockerhub/library/nginx` pulls `library/nginx` upstream',
          },
          upstream: {
            type: 'string',
            pattern: '^https?://[^/?#]+/?$',
            description: 'Upstream registry base URL (`https://registry-1.docker.io`)',
          },
          username: { type: 'string', minLength: 1, description: 'Upstream account (token or Basic auth)' },
          usernameFile: { type: 'string', minLength: 1, description: 'File holding the username' },
          password: { type: 'string', minLength: 1, description: 'Its password or access token' },
          passwordFile: { type: 'string', minLength: 1, description: 'File holding the password' },
          passwordEnv: {
            type: 'string',
            minLength: 1,
            description: 'Environment variable holding the password',
          },
          repositories: {
            type: 'array',
            items: { type: 'string', pattern: '^[a-z0-9*][a-z0-9._/*-]*$' },
            default: [],
            description: 'Allowed upstream repositories (`library/*`, `bitnami/**`); empty allows all',
          },
          library: {
            type: 'boolean',
            default: false,
            description: 'Docker Hub semantics: `dockerhub/nginx` is `library/nginx` upstream',
          },
          manifestTtlSeconds: {
            type: 'integer',
            minimum: 0,
            maximum: 604800,
            default: 300,
            description: 'A manifest pulled by tag is revalidated (HEAD, digest compare) after this long',
          },
          anonymousPull: {
            type: 'boolean',
            description: 'Anonymous pull through this proxy (default: registry.oci.anonymousPull)',
          },
          timeoutSeconds: {
            type: 'integer',
            minimum: 1,
            maximum: 600,
            default: 30,
            description: 'Timeout of each upstream request until its response headers',
          },
          retentionHours: {
            type: 'number',
            minimum: 0,
            default: 720,
            description: 'GC deletes cached images not pulled for this long (0 keeps them)',
          },
          quotaBytes: {
            type: 'integer',
            minimum: 0,
            default: 0,
            description: 'GC deletes the least recently pulled cached images beyond this size (0: no quota)',
          },
        },
        required: ['namespace', 'upstream'],
      },
    },
    metadataCacheMillis: {
      type: 'integer',
      minimum: 0,
      maximum: 60000,
      default: 1000,
      description:
        'How long a replica serves tags, manifests, blob links and repository records (their grants) from memory before revalidating them with the store by ETag (0: every request). The replica that made a change sees it at once; others within this bound, deletions included (docs/oci.md, "Caching").',
    },
    blobCache: {
      type: 'object',
      additionalProperties: false,
      description:
        'Blob bytes pulled from S3 kept on local disk, so repeated pulls of a layer need no store request (docs/oci.md, "Local blob cache"). Ignored on the fs store.',
      properties: {
        directory: {
          type: 'string',
          minLength: 1,
          description: 'Where the cached blobs are kept (a volume of their own); unset: no cache',
        },
        maxBytes: {
          type: 'integer',
          minimum: 0,
          default: 10 * 1024 ** 3,
          description: 'The least recently pulled blobs are dropped beyond this many bytes',
        },
        minBlobBytes: {
          type: 'integer',
          minimum: 0,
          default: 1024 * 1024,
          description: 'Smaller blobs (configs, signatures) are always read from the store',
        },
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
    authRestAuthPrefix: {
      type: 'string',
      pattern: '^(/[A-Za-z0-9._~-]+)*$',
      default: '/restauth',
      description: "Path of the AuthService's RestAuth API under authUrl (its auth.restauth.pathPrefix).",
    },
    serviceName: { type: 'string', minLength: 1 },
    servicePassword: { type: 'string', minLength: 1 },
    servicePasswordFile: { type: 'string', minLength: 1 },
    /** How long a verified credential is trusted without asking the AuthService again. */
    credentialCacheSeconds: {
      type: 'integer',
      minimum: 0,
      maximum: 600,
      default: 10,
      description: 'How long a registry trusts an AuthService answer: the bound on revocation delay.',
    },
    superusers: { type: 'array', items: { type: 'string' }, default: [] },
    protocols: {
      type: 'array',
      items: { enum: ['cargo', 'oci'] },
      uniqueItems: true,
      default: ['cargo', 'oci'],
    },
    cargo: cargoSchema,
    oci: ociSchema,
  },
  default: {},
} as const;

/** One OpenID Connect provider (an IdP such as GitLab) users may sign in with. */
const openIdProviderSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9-]{0,31}$',
      description: 'Short name of the provider; the `issuer` part of the `issuer:identity` username',
    },
    issuerUrl: {
      type: 'string',
      format: 'uri',
      description: 'Issuer URL; discovery must succeed at start-up',
    },
    clientId: { type: 'string', minLength: 1, description: 'Client ID registered at the provider' },
    clientSecret: { type: 'string', minLength: 1, description: 'Client secret (or clientSecretFile)' },
    clientSecretFile: { type: 'string', minLength: 1, description: 'File holding the client secret' },
    additionalScopes: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: ['profile', 'email'],
      description: "Scopes besides `openid`, as the provider's userinfo endpoint needs them",
    },
    redirectBaseUrl: {
      type: 'string',
      format: 'uri',
      description:
        'Base of the redirect URLs registered at the provider (`/ktra/api/v1/openid/me`, `…/replace_token`); default `publicUrl`',
    },
    usernameClaim: {
      type: 'string',
      minLength: 1,
      default: 'preferred_username',
      description: 'Claim naming the user (the `identity` part, and the wharf account name)',
    },
    groupsClaim: {
      type: 'string',
      minLength: 1,
      default: 'groups',
      description: "Claim listing the user's groups (GitLab: `groups`)",
    },
    authorizedGroups: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description: 'Members of any of these groups may sign in',
    },
    authorizedUsers: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description: 'These users may sign in; both lists empty: everyone (with a warning at start-up)',
    },
    accountPrefix: {
      type: 'string',
      pattern: '^[a-z0-9._-]{0,16}$',
      default: '',
      description: 'Prepended to the identity to form the wharf account name (keeps providers apart)',
    },
    allowInsecureRequests: {
      type: 'boolean',
      default: false,
      description: 'TESTS ONLY: allow a plain-http provider (tokens would cross the network in clear)',
    },
  },
  required: ['name', 'issuerUrl', 'clientId'],
} as const;

const openIdSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    providers: {
      type: 'array',
      items: openIdProviderSchema,
      default: [],
      description: 'OpenID Connect providers; none: OIDC off',
    },
    tokenEncryptionKey: {
      type: 'string',
      minLength: 32,
      description:
        "Required with providers: 32 bytes (base64 or hex) sealing each user's token at rest, so `/me` can show it again",
    },
    tokenEncryptionKeyFile: { type: 'string', minLength: 1, description: 'File holding tokenEncryptionKey' },
    sessionSeconds: {
      type: 'integer',
      minimum: 60,
      maximum: 30 * 24 * 3600,
      default: 8 * 3600,
      description: 'How long a browser stays signed in after an OpenID login',
    },
    loginTimeoutSeconds: {
      type: 'integer',
      minimum: 30,
      maximum: 3600,
      default: 600,
      description: 'How long a user has to finish signing in at the provider',
    },
  },
  default: {},
} as const;

/**
 * How long a client may take to send a request (docs/architecture.md, "Timeouts and body limits").
 * Streamed bodies (OCI blobs) are bounded by progress, not by a total: a 1 GiB push over a slow
 * link is legitimate, a body that stops moving is not.
 */
const httpSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    headersTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 600,
      default: 30,
      description:
        'Time to send the request line and headers, also for a connection that sends nothing: then 408 and the connection is closed.',
    },
    bodyIdleTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: 60,
      description:
        'A request body that brings no byte for this long is cut off (connection closed); an OCI upload keeps what earlier requests stored, so the client can resume.',
    },
    bodyTimeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: 120,
      description:
        'Deadline for a whole body wharf reads into memory (JSON, forms, cargo publish); streamed OCI bodies have only the idle timeout.',
    },
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
    metricsPort: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      default: 9464,
      description:
        'Port of a second listener, on `host`, that serves only /metrics (Prometheus), so an Ingress routing `port` never exposes it; 0 picks a free port.',
    },
    /** The URL clients use to reach this server (behind an ingress it differs from host:port). */
    publicUrl: { type: 'string', format: 'uri' },
    trustedProxies: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      default: [],
      description:
        'Addresses/CIDRs (or loopback, linklocal, uniquelocal) of the proxies in front (an Ingress controller): only their X-Forwarded-For/-Proto/-Host are believed (docs/architecture.md).',
    },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    /** Seconds in-flight requests get to finish on SIGTERM. */
    shutdownGraceSeconds: { type: 'integer', minimum: 0, maximum: 3600, default: 25 },
    bodyLimitBytes: {
      type: 'integer',
      minimum: 1024,
      default: 256 * 1024,
      description:
        'Largest JSON or form body (APIs, RestAuth); credential requests take 16 KiB, cargo publish `maxCrateBytes` + 4 MiB, manifests `maxManifestBytes` (docs/architecture.md).',
    },
    http: httpSchema,
    store: { ...storeSchema, default: {} },
    auth: authSchema,
    registry: registrySchema,
    openid: openIdSchema,
  },
} as const;
