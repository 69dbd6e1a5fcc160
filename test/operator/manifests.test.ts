/** Generated CRDs, desired objects and the Helm chart, checked without a cluster. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { AuthService, Registry } from '../../operator/api/types.ts';
import { registrySchema } from '../../operator/api/types.ts';
import { generatedCrdFiles } from '../../operator/gen-crds.ts';
import {
  authServiceObjects,
  BLOB_CACHE_DIR,
  blobCacheBytes,
  containerResources,
  IDENTITY_PATHS,
  optionalObjects,
  registryObjects,
  volumeSettings,
} from '../../operator/reconcile/desired.ts';
import { CONFIG_HASH_ANNOTATION } from '../../operator/reconcile/names.ts';
import { configSchema } from '../../server/config/schema.ts';
import { isTrustedProxyEntry } from '../../server/http/proxies.ts';
import { REPO_ROOT, toolPath } from '../support/tools.ts';

const run = promisify(execFile);

const meta = (name: string, kind: string) => ({
  apiVersion: 'wharf.dev/v1alpha1',
  kind,
  metadata: { name, namespace: 'ns', uid: `uid-${name}`, generation: 1 },
});
const storage = {
  mode: 's3' as const,
  endpoint: 'http://minio:9000',
  region: 'us-east-1',
  forcePathStyle: true,
  prefix: '',
  credentialsSecretRef: { name: 's3', accessKeyIdKey: 'accessKeyId', secretAccessKeyKey: 'secretAccessKey' },
  deletionPolicy: 'Retain' as const,
  abortIncompleteUploadsAfterDays: 1,
};
const auth: AuthService = {
  ...meta('main', 'AuthService'),
  spec: {
    replicas: 2,
    logLevel: 'info',
    storage,
    openIdProviders: [],
    signup: 'admin',
    services: [{ name: 'wiki', permissions: ['user_verify_password'] }],
    restauthPathPrefix: '/restauth',
  },
};
const registry: Registry = {
  ...meta('crates', 'Registry'),
  spec: {
    replicas: 1,
    logLevel: 'info',
    storage,
    authServiceRef: { name: 'main' },
    protocols: ['cargo', 'oci'],
    cargo: { authRequired: true },
    oci: { anonymousPull: false, proxies: [] },
    superusers: ['alice'],
    ingress: { host: 'crates.example.com', tlsSecretName: 'tls', trustedProxies: ['10.244.0.0/16'] },
  },
};
const registryInputs = {
  image: 'wharf:1',
  bucket: 'wharf-bucket',
  authServiceName: 'main',
  authRestAuthPrefix: '/restauth',
  serviceName: 'registry-crates',
  secretsDigest: 'x',
};

function configOf(objects: ReturnType<typeof registryObjects>) {
  const configMap = objects.find((object) => object.kind === 'ConfigMap') as unknown as {
    data: Record<string, string>;
  };
  return JSON.parse(configMap.data['config.yaml']!);
}

describe('CRDs', () => {
  it('committed YAML matches the generator (run npm run gen:crds)', () => {
    for (const [file, text] of generatedCrdFiles()) {
      expect(readFileSync(path.join(REPO_ROOT, file), 'utf8'), `${file} is stale: run npm run gen:crds`).toBe(
        text,
      );
    }
  });

  it('accepts as spec.ingress.trustedProxies only entries the server accepts', () => {
    const { pattern } = registrySchema.properties.spec.properties.ingress.properties.trustedProxies.items;
    const crdAccepts = (entry: string) => new RegExp(pattern).test(entry);
    const valid = ['10.0.0.0/8', '10.244.1.7', '0.0.0.0/0', 'fd00::/8', '::1', '::/0', '2001:db8::/32'];
    const alsoValid = [
      '2001:db8:0:0:0:0:0:1',
      '::ffff:10.1.2.3',
      '64:ff9b::192.0.2.33',
      'loopback',
      'uniquelocal',
    ];
    for (const entry of [...valid, ...alsoValid]) expect(crdAccepts(entry), entry).toBe(true);
    const invalid = [
      '256.1.1.1',
      '10.0.0.0/33',
      '1.2.3',
      'a:b',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '192.168.0.1/',
    ];
    const moreInvalid = ['2001:db8::1/129', '10.0.0.0/8 ', '01.2.3.4', 'everything', 'LOOPBACK', '', '*'];
    for (const entry of [...invalid, ...moreInvalid]) {
      expect(crdAccepts(entry), entry).toBe(false);
    }
    // Never looser than the server: whatever kubectl lets through, the pod starts with.
    for (const entry of [...valid, ...alsoValid, ...invalid, ...moreInvalid])
      if (crdAccepts(entry)) expect(isTrustedProxyEntry(entry), entry).toBe(true);
  });

  it('is structural: every schema node has a type', () => {
    const untyped: string[] = [];
    const walk = (node: Record<string, unknown>, at: string) => {
      if (!node.type) untyped.push(at);
      for (const [key, child] of Object.entries(
        (node.properties ?? {}) as Record<string, Record<string, unknown>>,
      ))
        walk(child, `${at}.${key}`);
      if (node.items) walk(node.items as Record<string, unknown>, `${at}[]`);
      if (node.additionalProperties && typeof node.additionalProperties === 'object')
        walk(node.additionalProperties as Record<string, unknown>, `${at}{}`);
    };
    for (const [file, text] of generatedCrdFiles()) {
      const crd = parseAllDocuments(text)[0]!.toJS();
      walk(crd.spec.versions[0].schema.openAPIV3Schema, file);
    }
    expect(untyped).toEqual([]);
  });
});

describe('desired objects', () => {
  it('routes the identity paths to the AuthService and everything else to the Registry, on one host', () => {
    const ingress = registryObjects(registry, registryInputs).find(
      (object) => object.kind === 'Ingress',
    ) as unknown as {
      spec: {
        tls: { hosts: string[] }[];
        rules: {
          host: string;
          http: { paths: { path: string; pathType: string; backend: { service: { name: string } } }[] };
        }[];
      };
    };
    expect(ingress.spec.rules).toHaveLength(1);
    expect(ingress.spec.tls[0]!.hosts).toEqual(['crates.example.com']);
    const routes = ingress.spec.rules[0]!.http.paths.map((p) => [p.path, p.backend.service.name]);
    expect(routes).toEqual([...IDENTITY_PATHS.map((p) => [p, 'main-auth']), ['/', 'crates-registry']]);
    expect(IDENTITY_PATHS).toEqual([
      '/me',
      '/auth/api/v1',
      '/replace_token',
      '/ktra/api/v1/new_user',
      '/ktra/api/v1/login',
      '/ktra/api/v1/change_password',
      '/ktra/api/v1/openid',
    ]);
  });

  it('writes server configurations the server schema accepts', () => {
    const ajv = new Ajv({ useDefaults: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(configSchema);
    const authConfig = configOf(
      authServiceObjects(auth, {
        image: 'wharf:1',
        bucket: 'wharf-bucket',
        adminSecret: { name: 'main-auth-admin', key: 'password' },
        registries: [{ serviceName: 'registry-crates', secretName: 'crates-registry-client' }],
        providers: [
          {
            provider: {
              ...meta('gitlab', 'OpenIdProvider'),
              spec: {
                issuerUrl: 'https://gitlab.example.com',
                additionalScopes: ['profile', 'email'],
                usernameClaim: 'preferred_username',
                groupsClaim: 'groups',
                authorizedGroups: ['dev'],
                authorizedUsers: [],
                accountPrefix: 'gl.',
                allowInsecureRequests: false,
              },
            },
            secretName: 'gitlab-client',
            clientId: 'wharf-client',
          },
        ],
        secretsDigest: 'x',
      }),
    );
    expect(validate(authConfig), JSON.stringify(validate.errors)).toBe(true);
    expect(authConfig.openid).toMatchObject({
      providers: [
        expect.objectContaining({
          name: 'gitlab',
          clientId: 'wharf-client',
          clientSecretFile: '/etc/wharf/openid/gitlab/client_secret',
        }),
      ],
      tokenEncryptionKeyFile: '/etc/wharf/signing/token-encryption-key',
    });
    expect(authConfig.auth.services.map((s: { name: string }) => s.name)).toEqual([
      'wiki',
      'registry-crates',
    ]);
    // The Registry relays each end user's address, so the password rate limits count people; the
    // wiki, not declared as relaying, is told apart by name only.
    expect(authConfig.auth.services).toEqual([
      expect.not.objectContaining({ forwardsClientAddress: true }),
      expect.objectContaining({ name: 'registry-crates', forwardsClientAddress: true }),
    ]);
    const config = configOf(registryObjects(registry, registryInputs));
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(config).toMatchObject({
      roles: ['registry'],
      publicUrl: 'https://crates.example.com',
      registry: { authUrl: 'http://main-auth.ns.svc:8080', serviceName: 'registry-crates' },
    });
  });

  it('runs volume mode as the fs store on its own claim: one replica, Recreate, no S3 credentials', () => {
    const onVolume = { ...storage, mode: 'volume' as const };
    delete (onVolume as { credentialsSecretRef?: unknown }).credentialsSecretRef;
    const ajv = new Ajv({ useDefaults: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(configSchema);
    const shapes = [
      registryObjects(
        {
          ...registry,
          spec: {
            ...registry.spec,
            replicas: 3,
            storage: {
              ...onVolume,
              volume: { size: '20Gi', storageClassName: 'fast', accessModes: ['ReadWriteOnce'] },
            },
          },
        },
        registryInputs,
      ),
      authServiceObjects(
        { ...auth, spec: { ...auth.spec, storage: onVolume } },
        {
          image: 'wharf:1',
          bucket: 'unused',
          adminSecret: { name: 'main-auth-admin', key: 'password' },
          registries: [],
          providers: [],
          secretsDigest: 'x',
        },
      ),
    ];
    const claims = shapes.map((objects) => {
      const config = configOf(objects);
      expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
      expect(config.store).toEqual({ driver: 'fs', dataDir: '/var/lib/wharf' });
      const claim = objects.find((object) => object.kind === 'PersistentVolumeClaim') as unknown as {
        metadata: { name: string; ownerReferences?: unknown };
        spec: Record<string, unknown>;
      };
      // No owner reference: the garbage collector must never take the data with the resource.
      expect(claim.metadata.ownerReferences).toBeUndefined();
      const deployment = objects.find((object) => object.kind === 'Deployment') as unknown as {
        spec: {
          replicas: number;
          strategy: unknown;
          template: {
            spec: { volumes: unknown[]; containers: { env: unknown[]; volumeMounts: unknown[] }[] };
          };
        };
      };
      expect(deployment.spec.replicas).toBe(1);
      expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
      const container = deployment.spec.template.spec.containers[0]!;
      expect(container.env).toEqual([]);
      expect(container.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/wharf' });
      expect(deployment.spec.template.spec.volumes).toContainEqual({
        name: 'data',
        persistentVolumeClaim: { claimName: claim.metadata.name },
      });
      return claim;
    });
    // Each resource its own claim, as each has its own bucket in mode s3.
    expect(claims.map((claim) => claim.metadata.name)).toEqual(['crates-registry-data', 'main-auth-data']);
    expect(claims[0]!.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'fast',
      resources: { requests: { storage: '20Gi' } },
    });
    expect(claims[1]!.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '10Gi' } },
    });
    expect(volumeSettings(onVolume).size).toBe(
      (
        registrySchema.properties.spec.properties.storage.properties.volume.properties.size as {
          default: string;
        }
      ).default,
    );
  });

  it("carries a client's RestAuth revision and policy, and the API's path, to the AuthService and its Registries", () => {
    const ajv = new Ajv({ useDefaults: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(configSchema);
    const wikiAuth: AuthService = {
      ...auth,
      spec: {
        ...auth.spec,
        restauthPathPrefix: '',
        services: [
          {
            name: 'wiki',
            permissions: ['*'],
            protocol: 'restauth-0.6',
            userNames: 'restauth',
            passwordMinLength: 6,
            groups: 'own',
          },
        ],
      },
    };
    const authConfig = configOf(
      authServiceObjects(wikiAuth, {
        image: 'wharf:1',
        bucket: 'wharf-bucket',
        adminSecret: { name: 'main-auth-admin', key: 'password' },
        registries: [{ serviceName: 'registry-crates', secretName: 'crates-registry-client' }],
        providers: [],
        secretsDigest: 'x',
      }),
    );
    expect(validate(authConfig), JSON.stringify(validate.errors)).toBe(true);
    expect(authConfig.auth.restauth).toEqual({ pathPrefix: '' });
    expect(authConfig.auth.services).toEqual([
      expect.objectContaining({
        name: 'wiki',
        protocol: 'restauth-0.6',
        userNames: 'restauth',
        passwordMinLength: 6,
        groups: 'own',
      }),
      // The Registry's own service keeps the defaults: reference protocol, shared groups.
      expect.objectContaining({ name: 'registry-crates', protocol: 'reference', groups: 'shared' }),
    ]);
    const config = configOf(registryObjects(registry, { ...registryInputs, authRestAuthPrefix: '' }));
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(config.registry).toMatchObject({
      authUrl: 'http://main-auth.ns.svc:8080',
      authRestAuthPrefix: '',
    });
  });

  it('exposes /metrics as a pod port only, never through the Service or the Ingress', () => {
    const objects = registryObjects(registry, registryInputs);
    const config = configOf(objects);
    expect(config.port).toBe(8080);
    expect(config.metricsPort).toBe(9464);
    const deployment = objects.find((object) => object.kind === 'Deployment') as unknown as {
      spec: {
        template: {
          metadata: { annotations: Record<string, string> };
          spec: {
            containers: {
              ports: { name: string; containerPort: number }[];
              readinessProbe: { httpGet: { path: string; port: string } };
              livenessProbe: { httpGet: { path: string; port: string } };
            }[];
          };
        };
      };
    };
    const container = deployment.spec.template.spec.containers[0]!;
    expect(container.ports.map(({ name, containerPort }) => [name, containerPort])).toEqual([
      ['http', 8080],
      ['metrics', 9464],
    ]);
    expect(deployment.spec.template.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9464',
      'prometheus.io/path': '/metrics',
    });
    // The probes stay on the port that serves traffic.
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const service = objects.find((object) => object.kind === 'Service') as unknown as {
      spec: { ports: { name: string; targetPort: string }[] };
    };
    expect(service.spec.ports.map((port) => port.targetPort)).toEqual(['http']);
    const ingress = objects.find((object) => object.kind === 'Ingress') as unknown as {
      spec: { rules: { http: { paths: { backend: { service: { port: { name: string } } } }[] } }[] };
    };
    const ports = ingress.spec.rules[0]!.http.paths.map((p) => p.backend.service.port.name);
    expect(new Set(ports)).toEqual(new Set(['http']));
  });

  it("believes the Ingress's controllers: trustedProxies of the Registry, and of the AuthService behind its host", () => {
    expect(configOf(registryObjects(registry, registryInputs)).trustedProxies).toEqual(['10.244.0.0/16']);
    const withoutIngress = {
      ...registry,
      spec: { ...registry.spec, ingress: undefined },
    } as unknown as Registry;
    expect(configOf(registryObjects(withoutIngress, registryInputs))).not.toHaveProperty('trustedProxies');
    const authInputs = {
      image: 'wharf:1',
      bucket: 'wharf-bucket',
      adminSecret: { name: 'main-auth-admin', key: 'password' },
      registries: [],
      providers: [],
      secretsDigest: 'x',
    };
    // Without an Ingress of its own, the AuthService is reached through its Registries' hosts.
    expect(configOf(authServiceObjects(auth, authInputs))).not.toHaveProperty('trustedProxies');
    expect(
      configOf(authServiceObjects(auth, { ...authInputs, registryTrustedProxies: ['10.244.0.0/16'] }))
        .trustedProxies,
    ).toEqual(['10.244.0.0/16']);
    const ownIngress = {
      ...auth,
      spec: {
        ...auth.spec,
        ingress: { host: 'id.example.com', trustedProxies: ['192.168.7.0/24', '10.244.0.0/16'] },
      },
    } as AuthService;
    expect(
      configOf(authServiceObjects(ownIngress, { ...authInputs, registryTrustedProxies: ['10.244.0.0/16'] }))
        .trustedProxies,
    ).toEqual(['10.244.0.0/16', '192.168.7.0/24']);
  });

  it('changes the pod template hash when the configuration or a Secret changes, and only then', () => {
    const hash = (inputs: typeof registryInputs, spec = registry.spec) => {
      const deployment = registryObjects({ ...registry, spec }, inputs).find(
        (object) => object.kind === 'Deployment',
      ) as unknown as {
        spec: { template: { metadata: { annotations: Record<string, string> } } };
      };
      return deployment.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION];
    };
    expect(hash(registryInputs)).toBe(hash({ ...registryInputs }));
    expect(hash({ ...registryInputs, secretsDigest: 'rotated' })).not.toBe(hash(registryInputs));
    expect(hash(registryInputs, { ...registry.spec, superusers: ['bob'] })).not.toBe(hash(registryInputs));
    // Replicas are not configuration: scaling does not restart pods.
    expect(hash(registryInputs, { ...registry.spec, replicas: 3 })).toBe(hash(registryInputs));
  });

  it('configures proxy caches with upstream credentials read from a mounted Secret', () => {
    const ajv = new Ajv({ useDefaults: true, strict: false });
    addFormats.default(ajv);
    const validate = ajv.compile(configSchema);
    const withProxies: Registry = {
      ...registry,
      spec: {
        ...registry.spec,
        oci: {
          anonymousPull: false,
          proxies: [
            {
              namespace: 'dockerhub',
              upstream: 'https://registry-1.docker.io',
              library: true,
              manifestTtlSeconds: 300,
              timeoutSeconds: 30,
              retentionHours: 720,
              quotaBytes: 0,
              credentialsSecretRef: { name: 'hub-login', usernameKey: 'user', passwordKey: 'token' },
            },
            {
              namespace: 'ghcr',
              upstream: 'https://ghcr.io',
              library: false,
              manifestTtlSeconds: 300,
              timeoutSeconds: 30,
              retentionHours: 720,
              quotaBytes: 0,
            },
          ],
        },
      },
    };
    const objects = registryObjects(withProxies, registryInputs);
    const config = configOf(objects);
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    expect(config.registry.oci.proxies).toEqual([
      expect.objectContaining({
        namespace: 'dockerhub',
        library: true,
        usernameFile: '/etc/wharf/proxies/dockerhub/username',
        passwordFile: '/etc/wharf/proxies/dockerhub/password',
      }),
      expect.not.objectContaining({ passwordFile: expect.anything() }),
    ]);
    expect(JSON.stringify(config)).not.toContain('credentialsSecretRef');
    const pod = (
      objects.find((object) => object.kind === 'Deployment') as unknown as {
        spec: { template: { spec: { volumes: { name: string; projected?: unknown }[] } } };
      }
    ).spec.template.spec;
    expect(pod.volumes.find((volume) => volume.name === 'proxies')?.projected).toEqual({
      sources: [
        {
          secret: {
            name: 'hub-login',
            items: [
              { key: 'user', path: 'dockerhub/username' },
              { key: 'token', path: 'dockerhub/password' },
            ],
          },
        },
      ],
    });
  });

  it('runs the server non-root with the image command and mounts each secret read-only', () => {
    const deployment = authServiceObjects(auth, {
      image: 'wharf:1',
      bucket: 'wharf-bucket',
      adminSecret: { name: 'main-auth-admin', key: 'password' },
      registries: [],
      providers: [],
      secretsDigest: 'x',
    }).find((object) => object.kind === 'Deployment') as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            securityContext: { runAsNonRoot: boolean };
            containers: {
              command: string[];
              args: string[];
              volumeMounts: { mountPath: string; readOnly?: boolean }[];
            }[];
          };
        };
      };
    };
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.containers[0]!.command).toEqual(['node', 'dist/server/main.js']);
    expect(pod.containers[0]!.args).toEqual(['--config', '/etc/wharf/config/config.yaml']);
    const mounts = pod.containers[0]!.volumeMounts.filter((mount) =>
      mount.mountPath.startsWith('/etc/wharf'),
    );
    expect(mounts.map((mount) => mount.mountPath).sort()).toEqual([
      '/etc/wharf/admin',
      '/etc/wharf/config',
      '/etc/wharf/services',
      '/etc/wharf/signing',
    ]);
    expect(mounts.every((mount) => mount.readOnly)).toBe(true);
  });

  it('keeps pulled blobs on an emptyDir of spec.oci.blobCache.sizeLimit, and lets the server fill 95% of it', () => {
    type Pod = {
      volumes: { name: string; emptyDir?: { sizeLimit: string } }[];
      containers: { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[];
    };
    const podOf = (objects: ReturnType<typeof registryObjects>) =>
      (
        objects.find((object) => object.kind === 'Deployment') as unknown as {
          spec: { template: { spec: Pod } };
        }
      ).spec.template.spec;
    const cached = {
      ...registry,
      spec: { ...registry.spec, oci: { ...registry.spec.oci, blobCache: { sizeLimit: '20Gi' } } },
    };
    const objects = registryObjects(cached, registryInputs);
    const pod = podOf(objects);
    expect(pod.volumes).toContainEqual({ name: 'blob-cache', emptyDir: { sizeLimit: '20Gi' } });
    const mounts = pod.containers[0]!.volumeMounts;
    expect(mounts).toContainEqual({ name: 'blob-cache', mountPath: BLOB_CACHE_DIR });
    expect(mounts.filter((mount) => mount.mountPath.startsWith('/etc/wharf')).every((m) => m.readOnly)).toBe(
      true,
    );
    const ajv = new Ajv({ useDefaults: true, strict: false });
    addFormats.default(ajv);
    const config = configOf(objects);
    expect(ajv.validate(configSchema, structuredClone(config)), JSON.stringify(ajv.errors)).toBe(true);
    expect(config.registry.oci.blobCache).toEqual({
      directory: BLOB_CACHE_DIR,
      maxBytes: Math.floor(20 * 1024 ** 3 * 0.95),
    });
    expect([blobCacheBytes('512Mi'), blobCacheBytes('1000')]).toEqual([
      Math.floor(512 * 1024 ** 2 * 0.95),
      950,
    ]);

    const plain = registryObjects(registry, registryInputs);
    expect(podOf(plain).volumes.map((volume) => volume.name)).not.toContain('blob-cache');
    expect(configOf(plain).registry.oci.blobCache).toBeUndefined();
  });

  it('requests cpu and memory by default, and leaves to the spec what it sets (a limit alone included)', () => {
    expect(containerResources(undefined)).toEqual({ requests: { cpu: '100m', memory: '256Mi' } });
    expect(containerResources({ requests: { memory: '1Gi' } })).toEqual({
      requests: { cpu: '100m', memory: '1Gi' },
    });
    // A memory limit without a request: Kubernetes requests the limit, so no default is added
    // (a default request above a small limit would be refused).
    expect(containerResources({ limits: { memory: '128Mi' } })).toEqual({
      requests: { cpu: '100m' },
      limits: { memory: '128Mi' },
    });
  });

  it('owns a PodDisruptionBudget only with more than one replica, and a ServiceAccount unless the spec names one', () => {
    const kinds = (spec: Partial<Registry['spec']>) =>
      registryObjects({ ...registry, spec: { ...registry.spec, ...spec } }, registryInputs).map(
        (object) => object.kind,
      );
    expect(kinds({ replicas: 1 })).toEqual([
      'ServiceAccount',
      'ConfigMap',
      'Service',
      'Deployment',
      'Ingress',
    ]);
    expect(kinds({ replicas: 3 })).toContain('PodDisruptionBudget');
    expect(kinds({ replicas: 3, serviceAccountName: 'ci-robot' })).not.toContain('ServiceAccount');
    // Volume mode runs one pod whatever the spec says: no budget that would block every drain.
    expect(kinds({ replicas: 3, storage: { ...storage, mode: 'volume' } })).not.toContain(
      'PodDisruptionBudget',
    );
    const wanted = (spec: Partial<Registry['spec']>) =>
      Object.fromEntries(
        optionalObjects({ ...registry, spec: { ...registry.spec, ...spec } }, 'crates-registry').map(
          (object) => [object.kind, object.wanted],
        ),
      );
    expect(wanted({ replicas: 1, ingress: undefined })).toEqual({
      PodDisruptionBudget: false,
      ServiceAccount: true,
      Ingress: false,
    });
  });
});

describe('Helm chart', () => {
  const helm = async (...args: string[]) =>
    (await run(await toolPath('helm'), args, { cwd: REPO_ROOT })).stdout;

  it('lints clean', async () => {
    const output = await helm(
      'lint',
      '--strict',
      'charts/wharf',
      '--set',
      'quickstart.enabled=true,metrics.serviceMonitor.enabled=true,metrics.serverPodMonitor.enabled=true',
      '--set',
      'quickstart.registry.host=r.example.com,quickstart.trustedProxies[0]=10.244.0.0/16',
    );
    expect(output).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  }, 60_000);

  it('renders what the values say', async () => {
    const kinds = async (...set: string[]) =>
      parseAllDocuments(
        await helm(
          'template',
          'w',
          'charts/wharf',
          '--namespace',
          'ops',
          ...set.flatMap((s) => ['--set', s]),
        ),
      )
        .map((doc) => doc.toJS())
        .filter(Boolean)
        .map(
          (object: { kind: string; metadata: { name: string } }) => `${object.kind}/${object.metadata.name}`,
        )
        .sort();
    // The uninstall hook's and `helm test`'s objects too (test/chart/chart.test.ts).
    expect(await kinds()).toEqual([
      'ClusterRole/w-wharf-cleanup',
      'ClusterRole/w-wharf-operator',
      'ClusterRoleBinding/w-wharf-cleanup',
      'ClusterRoleBinding/w-wharf-operator',
      'ConfigMap/w-wharf-cleanup',
      'Deployment/w-wharf-operator',
      'Job/w-wharf-cleanup',
      'Pod/w-wharf-test-health',
      'Role/w-wharf-operator-leader-election',
      'RoleBinding/w-wharf-operator-leader-election',
      'Service/w-wharf-operator-metrics',
      'ServiceAccount/w-wharf-cleanup',
      'ServiceAccount/w-wharf-operator',
    ]);
    const full = await kinds(
      'quickstart.enabled=true',
      'metrics.serviceMonitor.enabled=true',
      'leaderElection.enabled=false',
    );
    expect(full).toEqual(
      expect.arrayContaining(['AuthService/wharf', 'Registry/wharf', 'ServiceMonitor/w-wharf-operator']),
    );
    expect(full).not.toContain('Role/w-wharf-operator-leader-election');
    expect(await kinds('metrics.serverPodMonitor.enabled=true')).toContain('PodMonitor/w-wharf-servers');
  }, 60_000);

  it("scrapes the servers' metrics port and passes trustedProxies to the quick start's Ingress", async () => {
    const objects = parseAllDocuments(
      await helm(
        'template',
        'w',
        'charts/wharf',
        '--namespace',
        'ops',
        '--set',
        'metrics.serverPodMonitor.enabled=true,quickstart.enabled=true,quickstart.registry.host=r.example.com',
        '--set',
        'quickstart.trustedProxies={10.244.0.0/16,fd00:10:244::/56}',
      ),
    )
      .map((doc) => doc.toJS())
      .filter(Boolean);
    const podMonitor = objects.find((object) => object.kind === 'PodMonitor');
    expect(podMonitor.spec).toEqual({
      selector: {
        matchLabels: { 'app.kubernetes.io/name': 'wharf', 'app.kubernetes.io/managed-by': 'wharf-operator' },
      },
      namespaceSelector: { any: true },
      podMetricsEndpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }],
    });
    const registryResource = objects.find((object) => object.kind === 'Registry');
    expect(registryResource.spec.ingress).toEqual({
      host: 'r.example.com',
      trustedProxies: ['10.244.0.0/16', 'fd00:10:244::/56'],
    });
  }, 60_000);

  it('puts the quick start on volumes by default, and on S3 one value away', async () => {
    const storageOf = async (...set: string[]) => {
      const objects = parseAllDocuments(
        await helm(
          'template',
          'w',
          'charts/wharf',
          ...['quickstart.enabled=true', ...set].flatMap((v) => ['--set', v]),
        ),
      )
        .map((doc) => doc.toJS())
        .filter(Boolean);
      const storages = ['AuthService', 'Registry'].map(
        (kind) => objects.find((object: { kind: string }) => object.kind === kind).spec.storage,
      );
      expect(storages[0]).toEqual(storages[1]);
      return storages[0];
    };
    expect(await storageOf()).toEqual({
      mode: 'volume',
      volume: { size: '10Gi', accessModes: ['ReadWriteOnce'] },
      deletionPolicy: 'Retain',
    });
    expect(
      await storageOf('quickstart.storage.volume.storageClassName=fast,quickstart.storage.volume.size=50Gi'),
    ).toMatchObject({ mode: 'volume', volume: { size: '50Gi', storageClassName: 'fast' } });
    expect(await storageOf('quickstart.storage.mode=s3')).toEqual({
      mode: 's3',
      region: 'us-east-1',
      credentialsSecretRef: { name: 'wharf-s3' },
      deletionPolicy: 'Retain',
    });
    await expect(
      helm('template', 'w', 'charts/wharf', '--set', 'quickstart.enabled=true,quickstart.storage.mode=nfs'),
    ).rejects.toThrow(/mode/);
    await expect(
      helm(
        'template',
        'w',
        'charts/wharf',
        '--set',
        'quickstart.enabled=true,quickstart.storage.mode=s3,quickstart.storage.credentialsSecretName=',
      ),
    ).rejects.toThrow(/credentialsSecretName/);
    const lint = await helm(
      'lint',
      '--strict',
      'charts/wharf',
      '--set',
      'quickstart.enabled=true,quickstart.storage.mode=s3',
    );
    expect(lint).toMatch(/0 chart\(s\) failed/);
  }, 60_000);

  it("passes the quick start's pull-through caches to its Registry", async () => {
    const values = path.join(await mkdtemp(path.join(tmpdir(), 'wharf-chart-')), 'values.yaml');
    const proxies = [
      {
        namespace: 'dockerhub',
        upstream: 'https://registry-1.docker.io',
        library: true,
        credentialsSecretRef: { name: 'dockerhub-credentials' },
      },
      { namespace: 'ghcr', upstream: 'https://ghcr.io', repositories: ['myorg/**'] },
    ];
    await writeFile(
      values,
      JSON.stringify({ quickstart: { enabled: true, registry: { oci: { proxies } } } }),
    );
    const registryOf = async (...args: string[]) =>
      parseAllDocuments(await helm('template', 'w', 'charts/wharf', ...args))
        .map((doc) => doc.toJS())
        .find((object) => object?.kind === 'Registry');
    const rendered = await registryOf('-f', values);
    expect(rendered.spec.oci).toEqual({ proxies });
    // And the operator's own Registry schema (the CRD's) takes the rendered spec.
    const validate = new Ajv({ strict: false }).compile(registrySchema.properties.spec);
    expect(validate(rendered.spec), JSON.stringify(validate.errors)).toBe(true);
    expect(await helm('lint', '--strict', 'charts/wharf', '-f', values)).toMatch(/0 chart\(s\) failed/);
    // Without proxies the Registry keeps the CRD's defaults for spec.oci.
    expect((await registryOf('--set', 'quickstart.enabled=true')).spec.oci).toBeUndefined();
    await expect(
      helm('template', 'w', 'charts/wharf', '--set', 'quickstart.registry.oci.proxies[0].namespace=hub'),
    ).rejects.toThrow(/upstream/);
    // A local blob cache in front of S3; refused on volumes, where blobs are local files already.
    const onS3 = ['--set', 'quickstart.enabled=true', '--set', 'quickstart.storage.mode=s3'];
    const cached = await registryOf(...onS3, '--set', 'quickstart.registry.oci.blobCacheSizeLimit=20Gi');
    expect(cached.spec.oci).toEqual({ blobCache: { sizeLimit: '20Gi' } });
    expect(validate(cached.spec), JSON.stringify(validate.errors)).toBe(true);
    await expect(
      registryOf(
        '--set',
        'quickstart.enabled=true',
        '--set',
        'quickstart.registry.oci.blobCacheSizeLimit=20Gi',
      ),
    ).rejects.toThrow(/needs quickstart.storage.mode s3/);
    await expect(
      registryOf(...onS3, '--set', 'quickstart.registry.oci.blobCacheSizeLimit=20GB'),
    ).rejects.toThrow(/blobCacheSizeLimit/);
  }, 60_000);

  it('rejects values its schema does not allow', async () => {
    await expect(
      helm('template', 'w', 'charts/wharf', '--set', 'quickstart.storage.deletionPolicy=Sometimes'),
    ).rejects.toThrow(/deletionPolicy/);
    await expect(helm('template', 'w', 'charts/wharf', '--set', 'replicaCount=-1')).rejects.toThrow(
      /replicaCount/,
    );
  }, 60_000);
});
