/**
 * Pure builders of the objects the operator wants to exist for an AuthService or a Registry: the
 * server configuration file, ConfigMap, Deployment, Service and Ingress. No I/O here, so the shape
 * of what gets deployed is unit-tested and the e2e harness can start servers from the same pod spec.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  type AuthService,
  BLOB_CACHE_SIZE_PATTERN,
  DEFAULT_VOLUME_SIZE,
  type IngressSpec,
  type OpenIdProvider,
  type Registry,
  type StorageSpec,
} from '../api/types.ts';
import { stableHash } from '../runtime/compare.ts';
import {
  authNames,
  CONFIG_DIR,
  CONFIG_FILE,
  CONFIG_HASH_ANNOTATION,
  DATA_DIR,
  labels,
  METRICS_PORT,
  ownerReference,
  RESTAUTH_SERVICES_ANNOTATION,
  registryNames,
  SERVER_PORT,
} from './names.ts';

export const ADMIN_DIR = '/etc/wharf/admin';
export const SERVICES_DIR = '/etc/wharf/services';
export const SIGNING_DIR = '/etc/wharf/signing';
export const OPENID_DIR = '/etc/wharf/openid';
export const AUTH_CLIENT_DIR = '/etc/wharf/auth-client';
/** Upstream credentials of the proxy caches: `<namespace>/username` and `<namespace>/password`. */
export const PROXIES_DIR = '/etc/wharf/proxies';
/** The projected ServiceAccount token of storage.webIdentity (AWS_WEB_IDENTITY_TOKEN_FILE). */
export const WEB_IDENTITY_DIR = '/var/run/secrets/wharf/aws';

/** Permissions a Registry needs at its AuthService: check credentials and group membership. */
export const REGISTRY_SERVICE_PERMISSIONS = [
  'user_verify_password',
  'user_exists',
  'token_verify',
  'groups_list',
  'group_users_list',
  'group_user_in_group',
];

export interface RegistryService {
  /** RestAuth service name. */
  serviceName: string;
  /** Secret (owned by the Registry) whose key `password` is the service password. */
  secretName: string;
}

export interface ProviderInput {
  provider: OpenIdProvider;
  /** Secret with client_id and client_secret (referenced, or registered by the operator). */
  secretName: string;
  /** The client ID goes into the configuration; the secret stays in a mounted file. */
  clientId: string;
}

/** Key of the generated Secret <name>-auth-signing that encrypts users' tokens kept for OpenID logins. */
export const TOKEN_KEY = 'token-encryption-key';

/** A RestAuth service as the AuthService reports it: its name and the SHA-256 of its password. */
export interface ServiceCredentials {
  name: string;
  credentialsHash: string;
}

export interface AuthServiceInputs {
  image: string;
  bucket: string;
  adminSecret: { name: string; key: string };
  registries: RegistryService[];
  /** Every RestAuth service configured, recorded on the Deployment (RESTAUTH_SERVICES_ANNOTATION). */
  services?: ServiceCredentials[];
  providers: ProviderInput[];
  /** Digest of the Secrets the pods read, so a rotated password rolls the pods too. */
  secretsDigest: string;
  /**
   * Without an Ingress of its own, people reach the AuthService through a Registry's host (the
   * identity paths): that host is its public URL, and the base of OpenID redirect URLs.
   */
  fallbackPublicUrl?: string | undefined;
  /**
   * The ingress controllers in front of its Registries' hosts, which route the identity paths here
   * too: believed besides those of its own Ingress.
   */
  registryTrustedProxies?: string[];
}

export interface RegistryInputs {
  image: string;
  bucket: string;
  authServiceName: string;
  /** Its AuthService's `restauthPathPrefix`, where the Registry asks it about credentials. */
  authRestAuthPrefix: string;
  serviceName: string;
  secretsDigest: string;
}

export function publicUrl(ingress: IngressSpec | undefined): string | undefined {
  if (!ingress) return undefined;
  return `${ingress.tlsSecretName ? 'https' : 'http'}://${ingress.host}`;
}

/** What the server's `trustedProxies` becomes: the listed controllers, each once, in a stable order. */
export function trustedProxies(...lists: (readonly string[] | undefined)[]): string[] {
  return [...new Set(lists.flatMap((list) => list ?? []))].sort();
}

export function serviceUrl(serviceName: string, namespace: string): string {
  return `http://${serviceName}.${namespace}.svc:${SERVER_PORT}`;
}

export type VolumeSpec = NonNullable<StorageSpec['volume']>;

/** The claim settings of the volume mode, with the schema's defaults when `volume` is left out. */
export function volumeSettings(storage: StorageSpec): VolumeSpec {
  return storage.volume ?? { size: DEFAULT_VOLUME_SIZE, accessModes: ['ReadWriteOnce'] };
}

/**
 * The replicas the Deployment gets: in volume mode never more than one, whatever the spec asks
 * (the CRD refuses more; an object admitted before that rule still gets one pod and a condition).
 */
export function deploymentReplicas(owner: AuthService | Registry): number {
  return owner.spec.storage.mode === 'volume' ? Math.min(owner.spec.replicas, 1) : owner.spec.replicas;
}

function storeConfig(storage: StorageSpec, bucket: string) {
  if (storage.mode === 'volume') return { driver: 'fs', dataDir: DATA_DIR };
  return {
    driver: 's3',
    s3: {
      bucket,
      ...(storage.endpoint ? { endpoint: storage.endpoint } : {}),
      region: storage.region,
      forcePathStyle: storage.forcePathStyle,
      prefix: storage.prefix,
    },
  };
}

/** The server's configuration file for an AuthService (secrets only as file paths). */
export function authServiceConfig(auth: AuthService, inputs: AuthServiceInputs): Record<string, unknown> {
  const ownServices = auth.spec.services.map((service) => ({
    name: service.name,
    passwordFile: `${SERVICES_DIR}/${service.name}`,
    permissions: service.permissions,
    ...(service.forwardsClientAddress ? { forwardsClientAddress: true } : {}),
    ...(service.protocol ? { protocol: service.protocol } : {}),
    ...(service.userNames ? { userNames: service.userNames } : {}),
    ...(service.passwordMinLength ? { passwordMinLength: service.passwordMinLength } : {}),
    ...(service.groups ? { groups: service.groups } : {}),
  }));
  const registryServices = inputs.registries.map((registry) => ({
    name: registry.serviceName,
    passwordFile: `${SERVICES_DIR}/${registry.serviceName}`,
    permissions: REGISTRY_SERVICE_PERMISSIONS,
    // A Registry relays each end user's address (what its trusted proxies saw), so the password
    // rate limits count people, not the Registry.
    forwardsClientAddress: true,
  }));
  const url = publicUrl(auth.spec.ingress) ?? inputs.fallbackPublicUrl;
  const proxies = trustedProxies(auth.spec.ingress?.trustedProxies, inputs.registryTrustedProxies);
  return {
    roles: ['auth'],
    port: SERVER_PORT,
    metricsPort: METRICS_PORT,
    ...(url ? { publicUrl: url } : {}),
    ...(proxies.length ? { trustedProxies: proxies } : {}),
    logLevel: auth.spec.logLevel,
    store: storeConfig(auth.spec.storage, inputs.bucket),
    auth: {
      signup: auth.spec.signup,
      adminPasswordFile: `${ADMIN_DIR}/password`,
      services: [...ownServices, ...registryServices],
      restauth: { pathPrefix: auth.spec.restauthPathPrefix },
    },
    openid: inputs.providers.length
      ? {
          providers: inputs.providers.map(({ provider, clientId }) => ({
            name: provider.metadata.name,
            issuerUrl: provider.spec.issuerUrl,
            clientId,
            clientSecretFile: `${OPENID_DIR}/${provider.metadata.name}/client_secret`,
            additionalScopes: provider.spec.additionalScopes,
            ...(url ? { redirectBaseUrl: url } : {}),
            usernameClaim: provider.spec.usernameClaim,
            groupsClaim: provider.spec.groupsClaim,
            authorizedGroups: provider.spec.authorizedGroups,
            authorizedUsers: provider.spec.authorizedUsers,
            accountPrefix: provider.spec.accountPrefix,
            ...(provider.spec.allowInsecureRequests ? { allowInsecureRequests: true } : {}),
          })),
          tokenEncryptionKeyFile: `${SIGNING_DIR}/${TOKEN_KEY}`,
        }
      : {},
  };
}

/** The server's configuration file for a Registry. */
export function registryConfig(registry: Registry, inputs: RegistryInputs): Record<string, unknown> {
  const url = publicUrl(registry.spec.ingress);
  const { cargo, oci } = registry.spec;
  const proxies = trustedProxies(registry.spec.ingress?.trustedProxies);
  return {
    roles: ['registry'],
    port: SERVER_PORT,
    metricsPort: METRICS_PORT,
    ...(url ? { publicUrl: url } : {}),
    ...(proxies.length ? { trustedProxies: proxies } : {}),
    logLevel: registry.spec.logLevel,
    store: storeConfig(registry.spec.storage, inputs.bucket),
    registry: {
      authUrl: serviceUrl(authNames(inputs.authServiceName).workload, registry.metadata.namespace),
      authRestAuthPrefix: inputs.authRestAuthPrefix,
      serviceName: inputs.serviceName,
      servicePasswordFile: `${AUTH_CLIENT_DIR}/password`,
      superusers: registry.spec.superusers,
      protocols: registry.spec.protocols,
      cargo: {
        authRequired: cargo.authRequired,
        ...(cargo.mirror?.enabled ? { mirror: cargo.mirror } : {}),
      },
      oci: {
        anonymousPull: oci.anonymousPull,
        ...(oci.gc ? { gc: oci.gc } : {}),
        ...(oci.proxies.length ? { proxies: oci.proxies.map(proxyConfig) } : {}),
        ...(oci.blobCache
          ? { blobCache: { directory: BLOB_CACHE_DIR, maxBytes: blobCacheBytes(oci.blobCache.sizeLimit) } }
          : {}),
        // The generated ES256 key (PKCS#8 PEM) signs the registry's Docker tokens.
        signingKeyFile: `${SIGNING_DIR}/private.pem`,
      },
    },
  };
}

/** A proxy of the Registry as the server reads it: credentials as files from the mounted Secret. */
function proxyConfig(proxy: Registry['spec']['oci']['proxies'][number]): Record<string, unknown> {
  const { credentialsSecretRef, ...settings } = proxy;
  return credentialsSecretRef
    ? {
        ...settings,
        usernameFile: `${PROXIES_DIR}/${proxy.namespace}/username`,
        passwordFile: `${PROXIES_DIR}/${proxy.namespace}/password`,
      }
    : settings;
}

export function configHash(config: Record<string, unknown>, secretsDigest: string): string {
  return stableHash({ config, secretsDigest }).slice(0, 32);
}

interface Volume {
  name: string;
  mountPath: string;
  volume: Record<string, unknown>;
  /** Mounted read-write (the others are read-only). */
  writable?: true;
}

/** Where a Registry's local blob cache lives in its pods (spec.oci.blobCache). */
export const BLOB_CACHE_DIR = '/var/cache/wharf/blobs';

/**
 * What the cache may hold in an emptyDir of `sizeLimit`: 95% of it. The kubelet counts everything
 * on the volume (file system overhead included) and evicts the pod beyond the limit; the cache
 * itself never holds more than its maxBytes, copies in progress included.
 */
export function blobCacheBytes(sizeLimit: string): number {
  const match = new RegExp(BLOB_CACHE_SIZE_PATTERN).exec(sizeLimit);
  if (!match) throw new Error(`not a size: ${sizeLimit}`);
  const unit = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 }[match[1] ?? ''] ?? 0;
  return Math.floor(Number.parseInt(sizeLimit, 10) * 1024 ** unit * 0.95);
}

function authVolumes(auth: AuthService, inputs: AuthServiceInputs): Volume[] {
  const names = authNames(auth.metadata.name);
  const serviceSources = [
    ...(auth.spec.services.length
      ? [
          {
            secret: {
              name: names.services,
              items: auth.spec.services.map((service) => ({ key: service.name, path: service.name })),
            },
          },
        ]
      : []),
    ...inputs.registries.map((registry) => ({
      secret: { name: registry.secretName, items: [{ key: 'password', path: registry.serviceName }] },
    })),
  ];
  return [
    { name: 'config', mountPath: CONFIG_DIR, volume: { configMap: { name: names.config } } },
    {
      name: 'admin',
      mountPath: ADMIN_DIR,
      volume: {
        secret: {
          secretName: inputs.adminSecret.name,
          items: [{ key: inputs.adminSecret.key, path: 'password' }],
        },
      },
    },
    { name: 'signing', mountPath: SIGNING_DIR, volume: { secret: { secretName: names.signing } } },
    ...(serviceSources.length
      ? [{ name: 'services', mountPath: SERVICES_DIR, volume: { projected: { sources: serviceSources } } }]
      : []),
    ...(inputs.providers.length
      ? [
          {
            name: 'openid',
            mountPath: OPENID_DIR,
            volume: {
              projected: {
                sources: inputs.providers.map(({ provider, secretName }) => ({
                  secret: {
                    name: secretName,
                    items: [{ key: 'client_secret', path: `${provider.metadata.name}/client_secret` }],
                  },
                })),
              },
            },
          },
        ]
      : []),
  ];
}

function registryVolumes(registry: Registry): Volume[] {
  const names = registryNames(registry.metadata.name);
  const proxySecrets = registry.spec.oci.proxies.flatMap(({ namespace, credentialsSecretRef }) =>
    credentialsSecretRef ? [{ namespace, credentialsSecretRef }] : [],
  );
  return [
    { name: 'config', mountPath: CONFIG_DIR, volume: { configMap: { name: names.config } } },
    {
      name: 'auth-client',
      mountPath: AUTH_CLIENT_DIR,
      volume: { secret: { secretName: names.client, items: [{ key: 'password', path: 'password' }] } },
    },
    { name: 'signing', mountPath: SIGNING_DIR, volume: { secret: { secretName: names.signing } } },
    ...(proxySecrets.length
      ? [
          {
            name: 'proxies',
            mountPath: PROXIES_DIR,
            volume: {
              projected: {
                sources: proxySecrets.map(({ namespace, credentialsSecretRef: ref }) => ({
                  secret: {
                    name: ref.name,
                    items: [
                      { key: ref.usernameKey, path: `${namespace}/username` },
                      { key: ref.passwordKey, path: `${namespace}/password` },
                    ],
                  },
                })),
              },
            },
          },
        ]
      : []),
    ...(registry.spec.oci.blobCache
      ? [
          {
            name: 'blob-cache',
            mountPath: BLOB_CACHE_DIR,
            writable: true as const,
            volume: { emptyDir: { sizeLimit: registry.spec.oci.blobCache.sizeLimit } },
          },
        ]
      : []),
  ];
}

interface WorkloadShape {
  owner: AuthService | Registry;
  component: 'auth' | 'registry';
  workloadName: string;
  configMapName: string;
  config: Record<string, unknown>;
  hash: string;
  image: string;
  volumes: Volume[];
  /** The PersistentVolumeClaim mounted read-write at DATA_DIR (volume mode). */
  claimName: string;
  /** Annotations of the Deployment itself (not of its pods). */
  deploymentAnnotations?: Record<string, string>;
}

/** Requests of a server container when the spec names neither a request nor a limit for them. */
export const DEFAULT_REQUESTS = { cpu: '100m', memory: '256Mi' } as const;

/**
 * The container's resources: the spec's, plus the default request of each resource it leaves out
 * entirely (a limit alone makes Kubernetes request the limit, so no default is added then).
 */
export function containerResources(spec: (AuthService | Registry)['spec']['resources']): {
  requests: Record<string, string>;
  limits?: Record<string, string>;
} {
  const requests: Record<string, string> = { ...spec?.requests };
  for (const [name, value] of Object.entries(DEFAULT_REQUESTS))
    if (requests[name] === undefined && spec?.limits?.[name] === undefined) requests[name] = value;
  return { requests, ...(spec?.limits && Object.keys(spec.limits).length ? { limits: spec.limits } : {}) };
}

/** The ServiceAccount the pods run as: the spec's own, or the one the operator creates. */
export function serviceAccountOf(owner: AuthService | Registry, workloadName: string): string {
  return owner.spec.serviceAccountName ?? workloadName;
}

/** Spread by zone, then by node, as far as the scheduler can: never a reason to leave a pod pending. */
function topologySpread(selector: Record<string, string>) {
  return ['topology.kubernetes.io/zone', 'kubernetes.io/hostname'].map((topologyKey) => ({
    maxSkew: 1,
    topologyKey,
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selector },
  }));
}

function workloadObjects(shape: WorkloadShape): {
  serviceAccount?: KubernetesObject;
  podDisruptionBudget?: KubernetesObject;
  configMap: KubernetesObject;
  deployment: KubernetesObject;
  service: KubernetesObject;
} {
  const { owner, component, workloadName, image, volumes } = shape;
  const { name, namespace } = owner.metadata;
  const metadata = (objectName: string) => ({
    name: objectName,
    namespace,
    labels: labels(name, component),
    ownerReferences: [ownerReference(owner)],
  });
  const selector = {
    'app.kubernetes.io/name': 'wharf',
    'app.kubernetes.io/instance': name,
    'app.kubernetes.io/component': component,
  };
  const storage = owner.spec.storage;
  const onVolume = storage.mode === 'volume';
  const credentials = storage.credentialsSecretRef;
  const webIdentity = onVolume ? undefined : storage.webIdentity;
  const replicas = deploymentReplicas(owner);
  const configMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(shape.configMapName),
    data: { 'config.yaml': `${JSON.stringify(shape.config, null, 2)}\n` },
  };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      ...metadata(workloadName),
      ...(shape.deploymentAnnotations ? { annotations: shape.deploymentAnnotations } : {}),
    },
    spec: {
      replicas,
      selector: { matchLabels: selector },
      // On a volume, the old pod lets go of the claim (and the fs store's directory) before the new
      // one starts: a ReadWriteOnce claim cannot be attached to two nodes, nor the store shared.
      strategy: onVolume
        ? { type: 'Recreate' }
        : { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: { ...owner.spec.podLabels, ...labels(name, component) },
          annotations: {
            ...owner.spec.podAnnotations,
            [CONFIG_HASH_ANNOTATION]: shape.hash,
            // For Prometheus setups that discover pods by annotation; the chart's PodMonitor
            // selects the port by name instead.
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(METRICS_PORT),
            'prometheus.io/path': '/metrics',
          },
        },
        spec: {
          // Its own identity (cloud IAM for S3 through workload identity), never the API's: the
          // server does not talk to Kubernetes, so no token is mounted.
          serviceAccountName: serviceAccountOf(owner, workloadName),
          automountServiceAccountToken: false,
          topologySpreadConstraints: topologySpread(selector),
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            fsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'wharf',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', 'dist/server/main.js'],
              args: ['--config', CONFIG_FILE],
              env:
                !onVolume && credentials
                  ? [
                      {
                        name: 'WHARF_S3_ACCESS_KEY_ID',
                        valueFrom: {
                          secretKeyRef: { name: credentials.name, key: credentials.accessKeyIdKey },
                        },
                      },
                      {
                        name: 'WHARF_S3_SECRET_ACCESS_KEY',
                        valueFrom: {
                          secretKeyRef: { name: credentials.name, key: credentials.secretAccessKeyKey },
                        },
                      },
                    ]
                  : !onVolume && webIdentity
                    ? [
                        { name: 'AWS_ROLE_ARN', value: webIdentity.roleArn },
                        { name: 'AWS_WEB_IDENTITY_TOKEN_FILE', value: `${WEB_IDENTITY_DIR}/token` },
                        { name: 'AWS_ROLE_SESSION_NAME', value: workloadName },
                      ]
                    : [],
              // `http` first: what Services, the Ingress and the probes use. `metrics` is only a pod
              // port, so nothing outside the cluster's Prometheus reaches it.
              ports: [
                { name: 'http', containerPort: SERVER_PORT, protocol: 'TCP' },
                { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
              ],
              // Start-up (checking the bucket, loading state) may take a while; liveness waits for it.
              startupProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 2,
                failureThreshold: 90,
              },
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5 },
              livenessProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 10,
                failureThreshold: 6,
              },
              resources: containerResources(owner.spec.resources),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                ...volumes.map((volume) => ({
                  name: volume.name,
                  mountPath: volume.mountPath,
                  ...(volume.writable ? {} : { readOnly: true }),
                })),
                { name: 'tmp', mountPath: '/tmp' },
                ...(onVolume ? [{ name: 'data', mountPath: DATA_DIR }] : []),
                ...(webIdentity
                  ? [{ name: 'aws-web-identity', mountPath: WEB_IDENTITY_DIR, readOnly: true }]
                  : []),
              ],
            },
          ],
          volumes: [
            ...volumes.map((volume) => ({ name: volume.name, ...volume.volume })),
            { name: 'tmp', emptyDir: {} },
            ...(onVolume ? [{ name: 'data', persistentVolumeClaim: { claimName: shape.claimName } }] : []),
            // A token of the pod's ServiceAccount for STS only (its own audience, short-lived and
            // rotated by the kubelet): not the API token, which stays unmounted.
            ...(webIdentity
              ? [
                  {
                    name: 'aws-web-identity',
                    projected: {
                      sources: [
                        {
                          serviceAccountToken: {
                            audience: webIdentity.audience,
                            expirationSeconds: 3600,
                            path: 'token',
                          },
                        },
                      ],
                    },
                  },
                ]
              : []),
          ],
        },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(workloadName),
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [{ name: 'http', port: SERVER_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
  // Voluntary disruptions (node drains) take one pod at a time; pointless, and blocking drains, for one.
  const podDisruptionBudget =
    replicas > 1
      ? {
          apiVersion: 'policy/v1',
          kind: 'PodDisruptionBudget',
          metadata: metadata(workloadName),
          spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
        }
      : undefined;
  const serviceAccount = owner.spec.serviceAccountName
    ? undefined
    : {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          ...metadata(workloadName),
          ...(owner.spec.serviceAccountAnnotations
            ? { annotations: owner.spec.serviceAccountAnnotations }
            : {}),
        },
        automountServiceAccountToken: false,
      };
  return {
    configMap,
    deployment,
    service,
    ...(serviceAccount ? { serviceAccount } : {}),
    ...(podDisruptionBudget ? { podDisruptionBudget } : {}),
  };
}

/** Owned objects that exist only under some specs, and whether this spec wants each. */
export function optionalObjects(
  owner: AuthService | Registry,
  workloadName: string,
): { apiVersion: string; kind: string; name: string; wanted: boolean }[] {
  return [
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      name: workloadName,
      wanted: deploymentReplicas(owner) > 1,
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', name: workloadName, wanted: !owner.spec.serviceAccountName },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      name: workloadName,
      wanted: owner.spec.ingress !== undefined,
    },
  ];
}

/** The objects of a workload in the order they are applied: what the pods need before the pods. */
function ordered(objects: ReturnType<typeof workloadObjects>): KubernetesObject[] {
  const { serviceAccount, podDisruptionBudget, configMap, service, deployment } = objects;
  return [
    ...(serviceAccount ? [serviceAccount] : []),
    configMap,
    service,
    deployment,
    ...(podDisruptionBudget ? [podDisruptionBudget] : []),
  ];
}

/**
 * The claim of the volume mode. It carries no owner reference: the garbage collector must not
 * delete a registry's data with the resource. The finalizer deletes it only under
 * `deletionPolicy: Delete`; kept, it is found again by a resource of the same name.
 */
export function volumeClaimObject(
  owner: AuthService | Registry,
  component: 'auth' | 'registry',
  claimName: string,
): KubernetesObject {
  const volume = volumeSettings(owner.spec.storage);
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName,
      namespace: owner.metadata.namespace,
      labels: labels(owner.metadata.name, component),
    },
    spec: {
      accessModes: volume.accessModes,
      ...(volume.storageClassName ? { storageClassName: volume.storageClassName } : {}),
      resources: { requests: { storage: volume.size } },
    },
  } as KubernetesObject;
}

interface IngressPath {
  path: string;
  service: string;
}

function ingressObject(
  owner: AuthService | Registry,
  component: 'auth' | 'registry',
  name: string,
  paths: IngressPath[],
) {
  const ingress = owner.spec.ingress!;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      name,
      namespace: owner.metadata.namespace,
      labels: labels(owner.metadata.name, component),
      ...(ingress.annotations ? { annotations: ingress.annotations } : {}),
      ownerReferences: [ownerReference(owner)],
    },
    spec: {
      ...(ingress.className ? { ingressClassName: ingress.className } : {}),
      ...(ingress.tlsSecretName
        ? { tls: [{ hosts: [ingress.host], secretName: ingress.tlsSecretName }] }
        : {}),
      rules: [
        {
          host: ingress.host,
          http: {
            paths: paths.map(({ path, service }) => ({
              path,
              pathType: 'Prefix',
              backend: { service: { name: service, port: { name: 'http' } } },
            })),
          },
        },
      ],
    },
  };
}

/**
 * Identity paths that a Registry's host forwards to its AuthService: Ktra's user endpoints, and
 * wharf's account API with its browser sessions (the web UI's Tokens and Administration pages).
 */
export const IDENTITY_PATHS = [
  '/me',
  '/auth/api/v1',
  '/replace_token',
  '/ktra/api/v1/new_user',
  '/ktra/api/v1/login',
  '/ktra/api/v1/change_password',
  '/ktra/api/v1/openid',
];

export function authServiceObjects(auth: AuthService, inputs: AuthServiceInputs): KubernetesObject[] {
  const names = authNames(auth.metadata.name);
  const config = authServiceConfig(auth, inputs);
  const workload = workloadObjects({
    owner: auth,
    component: 'auth',
    workloadName: names.workload,
    configMapName: names.config,
    config,
    hash: configHash(config, inputs.secretsDigest),
    image: auth.spec.image ?? inputs.image,
    volumes: authVolumes(auth, inputs),
    claimName: names.data,
    ...(inputs.services
      ? { deploymentAnnotations: { [RESTAUTH_SERVICES_ANNOTATION]: JSON.stringify(inputs.services) } }
      : {}),
  });
  const objects = ordered(workload);
  if (auth.spec.storage.mode === 'volume') objects.unshift(volumeClaimObject(auth, 'auth', names.data));
  if (auth.spec.ingress) {
    objects.push(ingressObject(auth, 'auth', names.workload, [{ path: '/', service: names.workload }]));
  }
  return objects;
}

export function registryObjects(registry: Registry, inputs: RegistryInputs): KubernetesObject[] {
  const names = registryNames(registry.metadata.name);
  const config = registryConfig(registry, inputs);
  const workload = workloadObjects({
    owner: registry,
    component: 'registry',
    workloadName: names.workload,
    configMapName: names.config,
    config,
    hash: configHash(config, inputs.secretsDigest),
    image: registry.spec.image ?? inputs.image,
    volumes: registryVolumes(registry),
    claimName: names.data,
  });
  const objects = ordered(workload);
  if (registry.spec.storage.mode === 'volume')
    objects.unshift(volumeClaimObject(registry, 'registry', names.data));
  if (registry.spec.ingress) {
    const authService = authNames(inputs.authServiceName).workload;
    objects.push(
      ingressObject(registry, 'registry', names.workload, [
        ...IDENTITY_PATHS.map((path) => ({ path, service: authService })),
        { path: '/', service: names.workload },
      ]),
    );
  }
  return objects;
}
