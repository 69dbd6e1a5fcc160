/**
 * The custom resources (group wharf.dev, version v1alpha1), written once as OpenAPI v3 schemas. The
 * CRD generator (./crds.ts) publishes them, and ./schema-types.ts turns them into the types the
 * reconcilers use, so the YAML a user applies and the code that reads it cannot drift apart.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { FromSchema } from './schema-types.ts';

export const GROUP = 'wharf.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

const dnsName = {
  type: 'string',
  minLength: 1,
  maxLength: 253,
  pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
} as const;
const localRef = {
  type: 'object',
  description: 'A reference to an object in the same namespace.',
  properties: { name: { ...dnsName, description: 'Name of the object.' } },
  required: ['name'],
} as const;

const httpUrl = {
  type: 'string',
  maxLength: 2048,
  'x-kubernetes-validations': [
    { rule: "self.startsWith('https://') || self.startsWith('http://')", message: 'must be an http(s) URL' },
  ],
} as const;

const conditionSchema = {
  type: 'object',
  description: 'One aspect of the observed state, following the Kubernetes API conventions.',
  properties: {
    type: { type: 'string', maxLength: 316 },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', maxLength: 1024 },
    message: { type: 'string', maxLength: 32768 },
  },
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
} as const;

const conditions = {
  type: 'array',
  items: conditionSchema,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
} as const;

/**
 * An entry of the server's `trustedProxies`: an IPv4 or IPv6 address, optionally with /bits, or a
 * named range. Checked by the apiserver so a typo is refused at `kubectl apply`, not by a pod that
 * will not start; test/operator/manifests.test.ts holds it to the server's own check.
 */
const TRUSTED_PROXY_PATTERN = (() => {
  const octet = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
  const v4 = `(${octet}\\.){3}${octet}`;
  const h = '[0-9a-fA-F]{1,4}';
  const v6 = [
    `(${h}:){7}${h}`,
    `(${h}:){1,7}:`,
    `(${h}:){1,6}:${h}`,
    `(${h}:){1,5}(:${h}){1,2}`,
    `(${h}:){1,4}(:${h}){1,3}`,
    `(${h}:){1,3}(:${h}){1,4}`,
    `(${h}:){1,2}(:${h}){1,5}`,
    `${h}:(:${h}){1,6}`,
    `:((:${h}){1,7}|:)`,
    `(${h}:){6}${v4}`,
    `((${h}:){0,4}${h})?::(${h}:){0,4}${v4}`,
  ].join('|');
  return `^((${v4})(/(3[0-2]|[12]?[0-9]))?|(${v6})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?|loopback|linklocal|uniquelocal)$`;
})();

const ingressSchema = {
  type: 'object',
  description: 'Expose the server on one host through an Ingress.',
  properties: {
    host: { ...dnsName, description: 'Host name clients use, e.g. crates.example.com.' },
    className: { type: 'string', description: 'IngressClass name; the cluster default when omitted.' },
    tlsSecretName: {
      type: 'string',
      description: 'Secret with tls.crt/tls.key for the host; plain HTTP when omitted.',
    },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
    trustedProxies: {
      type: 'array',
      maxItems: 64,
      default: [],
      description:
        "Addresses or CIDRs of the ingress controller's pods (as the server sees them), whose X-Forwarded-For/-Proto/-Host the server believes. Empty: nothing is believed, and every client behind the Ingress counts as the controller's address (docs/operator.md).",
      items: { type: 'string', maxLength: 64, pattern: TRUSTED_PROXY_PATTERN },
      'x-kubernetes-list-type': 'set',
    },
  },
  required: ['host'],
} as const;

/** A claim's size when `storage.volume.size` is not given. */
export const DEFAULT_VOLUME_SIZE = '10Gi';

const volumeSchema = {
  type: 'object',
  description:
    'The PersistentVolumeClaim of the volume mode (the operator creates <name>-auth-data or <name>-registry-data).',
  properties: {
    size: {
      type: 'string',
      default: DEFAULT_VOLUME_SIZE,
      pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$',
      description: 'Requested capacity, e.g. 10Gi; may grow later when the StorageClass allows expansion.',
    },
    storageClassName: {
      type: 'string',
      maxLength: 253,
      description: "StorageClass of the claim; the cluster's default class when omitted.",
    },
    accessModes: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', enum: ['ReadWriteOnce', 'ReadWriteOncePod', 'ReadWriteMany'] },
      default: ['ReadWriteOnce'],
      'x-kubernetes-list-type': 'set',
      description:
        'Access modes asked of the claim. Whatever the mode, one pod uses it: the fs store is not shared between pods (docs/operator.md).',
    },
  },
} as const;

const storageSchema = {
  type: 'object',
  description:
    'Where the server keeps its state: an S3 bucket (mode s3: the operator creates the bucket when it is missing and checks it before use) or a PersistentVolumeClaim (mode volume: the fs store on the volume, one replica).',
  properties: {
    mode: {
      type: 'string',
      enum: ['s3', 'volume'],
      default: 's3',
      description:
        's3: a bucket, any number of replicas. volume: the fs store on a PersistentVolumeClaim, one replica with the Recreate strategy.',
    },
    volume: volumeSchema,
    endpoint: { ...httpUrl, description: 'S3 endpoint, e.g. http://minio.storage:9000; AWS when omitted.' },
    region: { type: 'string', default: 'us-east-1' },
    forcePathStyle: { type: 'boolean', default: true, description: 'Path-style addressing (MinIO, Ceph).' },
    bucket: {
      type: 'string',
      minLength: 3,
      maxLength: 63,
      pattern: '^[a-z0-9][a-z0-9.-]*[a-z0-9]$',
      description: 'Bucket name; the operator derives one from namespace and name when omitted.',
    },
    prefix: { type: 'string', default: '', pattern: '^([^/]+/)*$' },
    credentialsSecretRef: {
      type: 'object',
      description:
        "Secret holding the S3 access key pair (mode s3). Without it the servers use the AWS SDK's default credential chain (workload identity: IRSA, GKE, Azure; see serviceAccountName and serviceAccountAnnotations), and the operator its own identity to create and check the bucket.",
      properties: {
        name: dnsName,
        accessKeyIdKey: { type: 'string', default: 'accessKeyId' },
        secretAccessKeyKey: { type: 'string', default: 'secretAccessKey' },
      },
      required: ['name'],
    },
    webIdentity: {
      type: 'object',
      description:
        "AWS IAM web identity federation from any cluster (GKE, AKS, on-premises): the pods get a projected ServiceAccount token for `audience` and AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE, which the AWS SDK's default chain exchanges for the role's credentials. The role trusts the cluster's OIDC issuer and the pods' ServiceAccount. Not needed on EKS with IRSA (its webhook does the same from serviceAccountAnnotations).",
      properties: {
        roleArn: {
          type: 'string',
          minLength: 20,
          maxLength: 2048,
          pattern: '^arn:[a-z-]+:iam::[0-9]{12}:role/.+$',
        },
        audience: { type: 'string', default: 'sts.amazonaws.com', maxLength: 256 },
      },
      required: ['roleArn'],
    },
    deletionPolicy: {
      type: 'string',
      enum: ['Retain', 'Delete'],
      default: 'Retain',
      description:
        'What happens to the bucket (s3) or the PersistentVolumeClaim (volume) when the resource is deleted. Delete empties and removes the bucket, or deletes the claim; Retain keeps either, and a resource created again with the same name finds its data.',
    },
    abortIncompleteUploadsAfterDays: { type: 'integer', minimum: 1, maximum: 365, default: 1 },
  },
  'x-kubernetes-validations': [
    {
      rule: '!has(self.credentialsSecretRef) || !has(self.webIdentity)',
      message: 'credentialsSecretRef and webIdentity are two ways to the same credentials: give one',
    },
  ],
} as const;

/**
 * The fs store is one process's (or one host's) directory: its lock files are not proven safe
 * between pods on different nodes, even on a ReadWriteMany volume (docs/operator.md).
 */
export const VOLUME_REPLICAS_MESSAGE =
  'storage mode volume runs one replica: the fs store is not shared between pods (use mode s3 to scale out)';
/** A size in bytes, or binary units as a Kubernetes quantity writes them (`20Gi`). */
export const BLOB_CACHE_SIZE_PATTERN = '^[1-9][0-9]{0,15}(Ki|Mi|Gi|Ti)?$';

const specValidations = [
  { rule: "self.storage.mode != 'volume' || self.replicas <= 1", message: VOLUME_REPLICAS_MESSAGE },
  {
    rule: '!has(self.serviceAccountName) || !has(self.serviceAccountAnnotations)',
    message:
      'serviceAccountAnnotations annotate the ServiceAccount the operator creates; with serviceAccountName, annotate that ServiceAccount instead',
  },
] as const;

const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

const workload = {
  replicas: { type: 'integer', minimum: 0, maximum: 100, default: 1 },
  image: { type: 'string', description: 'Server image; the operator default (WHARF_IMAGE) when omitted.' },
  resources: {
    type: 'object',
    description:
      'Container resource requests/limits (cpu, memory). A resource given neither a request nor a limit here is requested at the default (cpu 100m, memory 256Mi); no limits unless set.',
    properties: {
      requests: stringMap,
      limits: stringMap,
    },
  },
  serviceAccountName: {
    ...dnsName,
    description:
      'An existing ServiceAccount the pods run as (e.g. one bound to a cloud IAM role for S3). Omitted: the operator creates <name>-auth or <name>-registry.',
  },
  serviceAccountAnnotations: {
    ...stringMap,
    description:
      'Annotations of the ServiceAccount the operator creates, e.g. eks.amazonaws.com/role-arn (IRSA), iam.gke.io/gcp-service-account (GKE) or azure.workload.identity/client-id (Azure).',
  },
  podAnnotations: {
    ...stringMap,
    description: "Annotations added to the server pods (the operator's own keys win).",
  },
  podLabels: {
    ...stringMap,
    description:
      'Labels added to the server pods, e.g. azure.workload.identity/use: "true" (the operator\'s own keys win).',
  },
  ingress: ingressSchema,
  storage: storageSchema,
  logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' },
} as const;

const baseStatus = {
  observedGeneration: { type: 'integer', format: 'int64' },
  conditions,
  url: { type: 'string', description: 'URL of the Service inside the cluster.' },
  publicUrl: { type: 'string', description: 'URL through the Ingress, when there is one.' },
  bucket: { type: 'string' },
  volumeClaimName: {
    type: 'string',
    description: 'The PersistentVolumeClaim holding the data (mode volume).',
  },
} as const;

export const openIdProviderSchema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        issuerUrl: { ...httpUrl, description: 'OpenID issuer; discovery is read from .well-known under it.' },
        clientSecretRef: {
          ...localRef,
          description:
            'Secret with client_id and client_secret. Without it the operator registers a client dynamically when the provider allows it.',
        },
        redirectUris: {
          type: 'array',
          maxItems: 16,
          items: httpUrl,
          description: 'Redirect URIs sent when the operator registers a client dynamically.',
        },
        initialAccessTokenSecretRef: {
          ...localRef,
          description: 'Secret with key "token": initial access token for dynamic client registration.',
        },
        additionalScopes: { type: 'array', items: { type: 'string' }, default: ['profile', 'email'] },
        usernameClaim: { type: 'string', default: 'preferred_username' },
        groupsClaim: { type: 'string', default: 'groups' },
        authorizedGroups: { type: 'array', items: { type: 'string' }, default: [] },
        authorizedUsers: { type: 'array', items: { type: 'string' }, default: [] },
        accountPrefix: {
          type: 'string',
          pattern: '^[a-z0-9._-]{0,16}$',
          default: '',
          description: 'Prepended to the identity to form the wharf account name (keeps providers apart).',
        },
        allowInsecureRequests: {
          type: 'boolean',
          default: false,
          description:
            'Allow a plain-http issuer (in-cluster test providers only: tokens cross the network in clear).',
        },
      },
      required: ['issuerUrl'],
    },
    status: {
      type: 'object',
      properties: {
        observedGeneration: { type: 'integer', format: 'int64' },
        conditions,
        userinfoEndpoint: { type: 'string' },
        registrationEndpoint: { type: 'string' },
        clientSecretName: {
          type: 'string',
          description: 'Secret the AuthService reads client_id/client_secret from.',
        },
      },
    },
  },
} as const;

export const authServiceSchema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        ...workload,
        openIdProviders: { type: 'array', items: localRef, default: [] },
        signup: {
          type: 'string',
          enum: ['admin', 'open', 'disabled'],
          default: 'admin',
          description: 'Who may create users: only admins, anyone, or nobody.',
        },
        services: {
          type: 'array',
          description:
            'RestAuth clients; the operator generates each password into the Secret <name>-services.',
          items: {
            type: 'object',
            properties: {
              name: { type: 'string', maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
              permissions: { type: 'array', items: { type: 'string' }, default: [] },
              forwardsClientAddress: {
                type: 'boolean',
                description:
                  "Trust the client's X-Forwarded-For as its end user's address for password rate limits (default false).",
              },
              protocol: {
                type: 'string',
                enum: ['reference', 'restauth-0.6'],
                description:
                  'RestAuth revision it speaks: reference (default) or restauth-0.6 (the released server and its client libraries).',
              },
              userNames: {
                type: 'string',
                enum: ['registry', 'restauth'],
                description:
                  'Names it may give new users: registry (default) or also RestAuth names (spaces, non-ASCII).',
              },
              passwordMinLength: {
                type: 'integer',
                minimum: 6,
                maximum: 256,
                description: 'Shortest password it may set (default 8).',
              },
              groups: {
                type: 'string',
                enum: ['shared', 'own'],
                description:
                  'shared (default): the groups registries see; own: groups only this client sees.',
              },
            },
            required: ['name'],
          },
          default: [],
          maxItems: 64,
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
        },
        adminSecretRef: {
          ...localRef,
          description:
            'Secret with key "password" for the bootstrap admin; generated into <name>-admin when omitted.',
        },
        restauthPathPrefix: {
          type: 'string',
          pattern: '^(/[A-Za-z0-9._~-]+)*$',
          default: '/restauth',
          description:
            'Where the RestAuth API is served; "" serves it at the root of the AuthService host (released RestAuth clients need it there). Its Registries follow.',
        },
      },
      required: ['storage'],
      'x-kubernetes-validations': specValidations,
    },
    status: {
      type: 'object',
      properties: {
        ...baseStatus,
        adminSecretName: { type: 'string' },
        registeredServices: {
          type: 'array',
          description:
            'RestAuth services that every available pod of the AuthService serves (its rollout complete), each with the SHA-256 of its password: a Registry is registered once its own credentialsHash is here.',
          items: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              credentialsHash: { type: 'string' },
            },
            required: ['name', 'credentialsHash'],
          },
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
        },
      },
    },
  },
} as const;

export const registrySchema = {
  type: 'object',
  properties: {
    spec: {
      type: 'object',
      properties: {
        ...workload,
        authServiceRef: {
          ...localRef,
          description: 'The AuthService (same namespace) that knows the users.',
        },
        protocols: {
          type: 'array',
          items: { type: 'string', enum: ['cargo', 'oci'] },
          default: ['cargo', 'oci'],
          minItems: 1,
          'x-kubernetes-list-type': 'set',
        },
        cargo: {
          type: 'object',
          default: {},
          properties: {
            authRequired: {
              type: 'boolean',
              default: false,
              description: 'Require a token to read the index and download crates.',
            },
            mirror: {
              type: 'object',
              description: 'Serve /ktra/api/v1/mirror/ from an upstream registry such as crates.io.',
              properties: {
                enabled: { type: 'boolean', default: false },
                upstreamIndex: { ...httpUrl, default: 'https://index.crates.io/' },
                upstreamDownload: {
                  ...httpUrl,
                  description: "Overrides the upstream's download URL template.",
                },
              },
            },
          },
        },
        oci: {
          type: 'object',
          default: {},
          properties: {
            anonymousPull: {
              type: 'boolean',
              default: false,
              description: 'Let anyone pull public repositories without a token.',
            },
            gc: {
              type: 'object',
              properties: {
                enabled: { type: 'boolean', default: true },
                graceHours: {
                  type: 'number',
                  minimum: 0,
                  default: 24,
                  description: 'Unreferenced blobs younger than this are kept.',
                },
                intervalMinutes: { type: 'number', minimum: 1, default: 60 },
                deleteUntagged: {
                  type: 'boolean',
                  default: false,
                  description:
                    'Delete manifests no tag reaches once untagged and unpulled for untaggedRetentionHours.',
                },
                untaggedRetentionHours: {
                  type: 'number',
                  minimum: 1,
                  default: 168,
                  description:
                    'How long a manifest stays after it lost its last tag and after its last pull by digest.',
                },
                dryRun: {
                  type: 'boolean',
                  default: false,
                  description: 'GC only logs what it would delete.',
                },
              },
            },
            proxies: {
              type: 'array',
              default: [],
              description:
                'Pull-through caches: each namespace serves an upstream registry (Docker Hub, ghcr.io, quay.io, registry.k8s.io) read-only.',
              items: {
                type: 'object',
                properties: {
                  namespace: {
                    type: 'string',
                    pattern: '^[a-z0-9]+(?:[._-][a-z0-9]+)*$',
                    maxLength: 64,
                    description:
                      'Namespace here, e.g. dockerhub: dockerhub/library/nginx pulls library/nginx.',
                  },
                  upstream: {
                    type: 'string',
                    pattern: '^https?://[^/?#]+/?$',
                    description: 'Upstream registry base URL, e.g. https://registry-1.docker.io.',
                  },
                  credentialsSecretRef: {
                    type: 'object',
                    description: 'Secret holding the upstream username and password (or access token).',
                    properties: {
                      name: dnsName,
                      usernameKey: { type: 'string', default: 'username' },
                      passwordKey: { type: 'string', default: 'password' },
                    },
                    required: ['name'],
                  },
                  repositories: {
                    type: 'array',
                    items: { type: 'string', pattern: '^[a-z0-9*][a-z0-9._/*-]*$' },
                    description: 'Allowed upstream repositories (library/*, bitnami/**); empty allows all.',
                  },
                  library: {
                    type: 'boolean',
                    default: false,
                    description: 'Docker Hub semantics: dockerhub/nginx is library/nginx upstream.',
                  },
                  manifestTtlSeconds: { type: 'integer', minimum: 0, maximum: 604800, default: 300 },
                  anonymousPull: {
                    type: 'boolean',
                    description: 'Anonymous pull through this proxy (default: spec.oci.anonymousPull).',
                  },
                  timeoutSeconds: { type: 'integer', minimum: 1, maximum: 600, default: 30 },
                  retentionHours: {
                    type: 'number',
                    minimum: 0,
                    default: 720,
                    description: 'GC deletes cached images not pulled for this long (0 keeps them).',
                  },
                  quotaBytes: {
                    type: 'integer',
                    minimum: 0,
                    default: 0,
                    description: 'GC deletes the least recently pulled cached images beyond this size.',
                  },
                },
                required: ['namespace', 'upstream'],
              },
            },
            blobCache: {
              type: 'object',
              description:
                'Blobs pulled from S3 kept on each pod\'s local disk (an emptyDir), so repeated pulls of a layer need no S3 request (docs/oci.md, "Local blob cache"). Storage mode s3 only.',
              properties: {
                sizeLimit: {
                  type: 'string',
                  pattern: BLOB_CACHE_SIZE_PATTERN,
                  description:
                    "The emptyDir's size limit, e.g. 20Gi (node ephemeral storage); the cache keeps at most 95% of it.",
                },
              },
              required: ['sizeLimit'],
            },
          },
        },
        superusers: { type: 'array', items: { type: 'string' }, default: [] },
      },
      required: ['authServiceRef', 'storage'],
      'x-kubernetes-validations': [
        ...specValidations,
        {
          rule: "!has(self.oci.blobCache) || self.storage.mode == 's3'",
          message:
            'oci.blobCache keeps blobs read from S3; on storage mode volume they are local files already',
        },
      ],
    },
    status: {
      type: 'object',
      properties: {
        ...baseStatus,
        serviceName: { type: 'string', description: 'RestAuth service name at the AuthService.' },
        credentialsHash: {
          type: 'string',
          description:
            'SHA-256 of the RestAuth password: tells the AuthService to roll its pods when it changes.',
        },
      },
    },
  },
} as const;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

type Resource<S extends { properties: { spec: unknown; status: unknown } }> = KubernetesObject & {
  metadata: NonNullable<KubernetesObject['metadata']> & { name: string; namespace: string };
  spec: FromSchema<S['properties']['spec']>;
  status?: Omit<FromSchema<S['properties']['status']>, 'conditions'> & { conditions?: Condition[] };
};

export type OpenIdProvider = Resource<typeof openIdProviderSchema>;
export type AuthService = Resource<typeof authServiceSchema>;
export type Registry = Resource<typeof registrySchema>;
export type StorageSpec = AuthService['spec']['storage'];
export type IngressSpec = NonNullable<AuthService['spec']['ingress']>;

/** Each kind with its names, printer columns and short names: what the CRD generator needs. */
export const KINDS = {
  OpenIdProvider: {
    plural: 'openidproviders',
    singular: 'openidprovider',
    shortNames: ['oidp'],
    schema: openIdProviderSchema,
    columns: [{ name: 'Issuer', type: 'string', jsonPath: '.spec.issuerUrl' }],
  },
  AuthService: {
    plural: 'authservices',
    singular: 'authservice',
    shortNames: ['was'],
    schema: authServiceSchema,
    columns: [
      { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
      { name: 'Host', type: 'string', jsonPath: '.spec.ingress.host' },
    ],
  },
  Registry: {
    plural: 'registries',
    singular: 'registry',
    shortNames: ['wreg'],
    schema: registrySchema,
    columns: [
      { name: 'AuthService', type: 'string', jsonPath: '.spec.authServiceRef.name' },
      { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
      { name: 'Host', type: 'string', jsonPath: '.spec.ingress.host' },
    ],
  },
} as const;

export type KindName = keyof typeof KINDS;
