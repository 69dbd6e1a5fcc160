/**
 * The Helm chart as rendered by the real helm: `helm lint --strict`, and every manifest of every
 * switch combination (hooks and `helm test` Pods included) handed to a real kube-apiserver as a
 * server-side dry-run with strict field validation, the wharf CRDs and the Prometheus Operator's
 * PodMonitor/ServiceMonitor CRDs installed. Then what each switch promises, object by object.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { KubeClient } from '../../operator/kube/client.ts';
import { authServiceObjects, registryObjects } from '../../operator/reconcile/desired.ts';
import { type ControlPlane, startControlPlane } from '../support/control-plane.ts';
import { REPO_ROOT, toolPath } from '../support/tools.ts';
import {
  discovery,
  dryRunCreate,
  helmRun,
  installCrds,
  type Manifest,
  renderChart,
  selects,
} from './support.ts';

const DIGEST = `sha256:${'ab12'.repeat(16)}`;
const CONTROLLER = [
  'networkPolicy.ingressController.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=ingress-nginx',
  'networkPolicy.ingressController.podSelector.matchLabels.app\\.kubernetes\\.io/name=ingress-nginx',
];

/** The switch combinations every test below renders: each is linted and dry-run applied. */
const VALUE_SETS: Record<string, string[]> = {
  defaults: [],
  'everything on': [
    'quickstart.enabled=true',
    'quickstart.registry.host=r.example.com',
    'quickstart.authService.host=id.example.com',
    'quickstart.ingressClassName=nginx',
    'quickstart.trustedProxies={10.244.0.0/16}',
    'metrics.serviceMonitor.enabled=true',
    'metrics.serverPodMonitor.enabled=true',
    'metrics.serviceMonitor.labels.release=prometheus',
    'networkPolicy.enabled=true',
    'networkPolicy.extraFrom[0].podSelector.matchLabels.app=wiki',
    `image.digest=${DIGEST}`,
    'replicaCount=2',
    ...CONTROLLER,
  ],
  'one namespace': [
    'watchNamespace=team',
    'networkPolicy.enabled=true',
    'metrics.serverPodMonitor.enabled=true',
    'image.tag=1.2.3',
    'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/wharf-operator',
  ],
  'quick start on s3 in another namespace': [
    'quickstart.enabled=true',
    'quickstart.namespace=quick',
    'quickstart.storage.mode=s3',
    'quickstart.storage.endpoint=http://minio.storage:9000',
    'quickstart.registry.oci.proxies[0].namespace=hub',
    'quickstart.registry.oci.proxies[0].upstream=https://registry-1.docker.io',
  ],
  'everything off': [
    'rbac.create=false',
    'serviceAccount.create=false',
    'metrics.service.enabled=false',
    'leaderElection.enabled=false',
    'cleanupOnUninstall.enabled=false',
    'tests.enabled=false',
    'networkPolicy.enabled=false',
    'quickstart.enabled=true',
  ],
};

let plane: ControlPlane;
let admin: KubeClient;

beforeAll(async () => {
  const [started, monitoringCrds] = await Promise.all([
    startControlPlane(),
    toolPath('prometheus-operator-crds'),
  ]);
  plane = started;
  admin = new KubeClient(plane.admin, 'wharf-test');
  for (const name of ['ops', 'team', 'quick'])
    await admin.request('POST', '/api/v1/namespaces', {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
    });
  await installCrds(admin, path.join(REPO_ROOT, 'charts/wharf/crds'));
  await installCrds(admin, monitoringCrds);
}, 300_000);

afterAll(async () => {
  await plane?.stop();
});

describe('every rendered manifest', () => {
  for (const [name, set] of Object.entries(VALUE_SETS)) {
    it(`${name}: helm lint --strict passes and the apiserver accepts each object (dry-run)`, async () => {
      const args = set.flatMap((value) => ['--set', value]);
      expect(await helmRun('lint', '--strict', 'charts/wharf', '--namespace', 'ops', ...args)).toMatch(
        /1 chart\(s\) linted, 0 chart\(s\) failed/,
      );
      const objects = await renderChart('charts/wharf', { set });
      expect(objects.length).toBeGreaterThan(0);
      const collectionOf = discovery(admin);
      const refused: string[] = [];
      for (const object of objects) {
        const error = await dryRunCreate(admin, collectionOf, object);
        if (error) refused.push(`${object.kind}/${object.metadata?.name}: ${error}`);
      }
      expect(refused).toEqual([]);
    }, 120_000);
  }

  it('the dry-run is no formality: the apiserver refuses a field its schema lacks', async () => {
    const [monitor] = (
      await renderChart('charts/wharf', { set: ['metrics.serviceMonitor.enabled=true'] })
    ).filter((object) => object.kind === 'ServiceMonitor');
    const spec = monitor!.spec as { endpoints: Record<string, unknown>[] };
    spec.endpoints[0]!.scrapeEvery = '30s';
    expect(await dryRunCreate(admin, discovery(admin), monitor!)).toMatch(
      /unknown field "spec.endpoints\[0\].scrapeEvery"/,
    );
  });

  it('the CRD chart renders the generated CRDs unchanged, but for its labels and the keep policy', async () => {
    const rendered = await renderChart('charts/wharf-crds');
    expect(rendered.map((crd) => crd.metadata!.name).sort()).toEqual([
      'authservices.wharf.dev',
      'openidproviders.wharf.dev',
      'registries.wharf.dev',
    ]);
    for (const crd of rendered) {
      const plural = crd.metadata!.name!.split('.')[0];
      const generated = parseAllDocuments(
        readFileSync(path.join(REPO_ROOT, 'charts/wharf/crds', `${plural}.yaml`), 'utf8'),
      )[0]!.toJS() as Manifest;
      expect(crd.metadata!.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(crd.metadata!.labels).toMatchObject({
        'app.kubernetes.io/component': 'crds',
        'helm.sh/chart': 'wharf-crds-0.1.0',
      });
      expect({ ...crd, metadata: { name: crd.metadata!.name } }).toEqual({
        ...generated,
        metadata: { name: generated.metadata!.name },
      });
    }
    expect(await helmRun('lint', '--strict', 'charts/wharf-crds')).toMatch(/0 chart\(s\) failed/);
  });
});

const byKind = (objects: Manifest[], kind: string) => objects.filter((object) => object.kind === kind);
const names = (objects: Manifest[]) =>
  objects.map((object) => `${object.kind}/${object.metadata!.name}`).sort();

describe('RBAC', () => {
  it('is a ClusterRole when the operator watches every namespace, a Role in watchNamespace otherwise', async () => {
    const cluster = await renderChart('charts/wharf');
    expect(names([...byKind(cluster, 'ClusterRole'), ...byKind(cluster, 'ClusterRoleBinding')])).toEqual([
      'ClusterRole/w-wharf-cleanup',
      'ClusterRole/w-wharf-operator',
      'ClusterRoleBinding/w-wharf-cleanup',
      'ClusterRoleBinding/w-wharf-operator',
    ]);
    const scoped = await renderChart('charts/wharf', { set: ['watchNamespace=team'] });
    expect(byKind(scoped, 'ClusterRole')).toEqual([]);
    expect(byKind(scoped, 'ClusterRoleBinding')).toEqual([]);
    const roles = [...byKind(scoped, 'Role'), ...byKind(scoped, 'RoleBinding')].map(
      (object) => `${object.kind}/${object.metadata!.namespace}/${object.metadata!.name}`,
    );
    expect(roles.sort()).toEqual([
      'Role/ops/w-wharf-operator-leader-election',
      'Role/team/w-wharf-cleanup',
      'Role/team/w-wharf-operator',
      'RoleBinding/ops/w-wharf-operator-leader-election',
      'RoleBinding/team/w-wharf-cleanup',
      'RoleBinding/team/w-wharf-operator',
    ]);
    // The same rules either way; the subject is the operator's ServiceAccount in the release namespace.
    const rules = (objects: Manifest[], kind: string) =>
      byKind(objects, kind).find((object) => object.metadata!.name === 'w-wharf-operator')!.rules;
    expect(rules(scoped, 'Role')).toEqual(rules(cluster, 'ClusterRole'));
    const binding = byKind(scoped, 'RoleBinding').find(
      (object) => object.metadata!.name === 'w-wharf-operator',
    )!;
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'w-wharf-operator',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'w-wharf-operator', namespace: 'ops' },
    ]);
  });

  it("puts serviceAccount.annotations on the operator's ServiceAccount (workload identity for the buckets it creates)", async () => {
    const role = 'arn:aws:iam::123456789012:role/wharf-operator';
    const objects = await renderChart('charts/wharf', {
      set: [`serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=${role}`],
    });
    const account = byKind(objects, 'ServiceAccount').find(
      (object) => object.metadata!.name === 'w-wharf-operator',
    )!;
    expect(account.metadata!.annotations).toEqual({ 'eks.amazonaws.com/role-arn': role });
    const plain = await renderChart('charts/wharf');
    expect(
      byKind(plain, 'ServiceAccount').find((object) => object.metadata!.name === 'w-wharf-operator')!
        .metadata!.annotations,
    ).toBeUndefined();
  });

  it('never lets the operator delete its own kinds, nor touch a CRD; only the uninstall hook deletes them', async () => {
    const objects = await renderChart('charts/wharf');
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const rulesOf = (name: string) =>
      (byKind(objects, 'ClusterRole').find((object) => object.metadata!.name === name)!.rules as Rule[]) ??
      [];
    const operatorRules = rulesOf('w-wharf-operator');
    for (const rule of operatorRules) {
      expect(rule.verbs).not.toContain('*');
      expect(rule.resources).not.toContain('*');
      expect(rule.apiGroups).not.toContain('apiextensions.k8s.io');
      if (rule.apiGroups.includes('wharf.dev')) expect(rule.verbs).not.toContain('delete');
    }
    expect(rulesOf('w-wharf-cleanup')).toEqual([
      {
        apiGroups: ['wharf.dev'],
        resources: ['openidproviders', 'authservices', 'registries'],
        verbs: ['list', 'delete'],
      },
    ]);
  });
});

describe('image', () => {
  it('pulls by digest when image.digest is set, everywhere the image runs, and by tag otherwise', async () => {
    const images = (objects: Manifest[]) => {
      const found: string[] = [];
      const walk = (node: unknown) => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node && typeof node === 'object')
          for (const [key, value] of Object.entries(node)) {
            if (key === 'image' && typeof value === 'string') found.push(value);
            else if (key === 'env' && Array.isArray(value))
              for (const variable of value as { name: string; value?: string }[])
                if (variable.name === 'WHARF_IMAGE') found.push(`WHARF_IMAGE=${variable.value}`);
            walk(value);
          }
      };
      walk(objects);
      return found;
    };
    const set = ['quickstart.enabled=true'];
    const byTag = images(await renderChart('charts/wharf', { set: [...set, 'image.tag=1.2.3'] }));
    // The operator, the server image it hands down, the uninstall hook and `helm test`.
    expect(new Set(byTag.map((image) => image.replace('WHARF_IMAGE=', '')))).toEqual(
      new Set(['ghcr.io/wharf-dev/wharf:1.2.3']),
    );
    expect(byTag).toHaveLength(4);
    const byDigest = images(
      await renderChart('charts/wharf', { set: [...set, 'image.tag=1.2.3', `image.digest=${DIGEST}`] }),
    );
    expect(new Set(byDigest.map((image) => image.replace('WHARF_IMAGE=', '')))).toEqual(
      new Set([`ghcr.io/wharf-dev/wharf@${DIGEST}`]),
    );
    expect(byDigest).toHaveLength(4);
    // A server image of its own still wins for the servers.
    const own = images(
      await renderChart('charts/wharf', { set: [`image.digest=${DIGEST}`, 'serverImage=mirror/wharf:9'] }),
    );
    expect(own).toContain('WHARF_IMAGE=mirror/wharf:9');
    await expect(renderChart('charts/wharf', { set: ['image.digest=latest'] })).rejects.toThrow(/digest/);
    await expect(
      renderChart('charts/wharf', { set: [`image.digest=sha256:${'AB'.repeat(32)}`] }),
    ).rejects.toThrow(/digest/);
  });
});

describe('NetworkPolicy on the AuthService pods', () => {
  const authPodLabels = () => {
    const deployment = authServiceObjects(
      {
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'AuthService',
        metadata: { name: 'wharf', namespace: 'ops', uid: 'u1', generation: 1 },
        spec: {
          replicas: 1,
          logLevel: 'info',
          storage: {
            mode: 'volume',
            region: 'us-east-1',
            forcePathStyle: true,
            prefix: '',
            deletionPolicy: 'Retain',
            abortIncompleteUploadsAfterDays: 1,
          },
          openIdProviders: [],
          signup: 'admin',
          services: [],
          restauthPathPrefix: '/restauth',
        },
      } as never,
      {
        image: 'wharf:1',
        bucket: 'b',
        adminSecret: { name: 'a', key: 'password' },
        registries: [],
        providers: [],
        secretsDigest: 'x',
      },
    ).find((object) => object.kind === 'Deployment') as unknown as {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { ports: { name: string }[] }[] };
        };
      };
    };
    return deployment.spec.template;
  };
  const registryPodLabels = () => {
    const deployment = registryObjects(
      {
        apiVersion: 'wharf.dev/v1alpha1',
        kind: 'Registry',
        metadata: { name: 'crates', namespace: 'ops', uid: 'u2', generation: 1 },
        spec: {
          replicas: 1,
          logLevel: 'info',
          storage: {
            mode: 'volume',
            region: 'us-east-1',
            forcePathStyle: true,
            prefix: '',
            deletionPolicy: 'Retain',
            abortIncompleteUploadsAfterDays: 1,
          },
          authServiceRef: { name: 'wharf' },
          protocols: ['cargo', 'oci'],
          cargo: { authRequired: true },
          oci: { anonymousPull: false, proxies: [] },
          superusers: [],
        },
      } as never,
      {
        image: 'wharf:1',
        bucket: 'b',
        authServiceName: 'wharf',
        authRestAuthPrefix: '/restauth',
        serviceName: 'registry-crates',
        secretsDigest: 'x',
      },
    ).find((object) => object.kind === 'Deployment') as unknown as {
      spec: { template: { metadata: { labels: Record<string, string> } } };
    };
    return deployment.spec.template.metadata.labels;
  };
  type Peer = {
    podSelector?: Parameters<typeof selects>[0];
    namespaceSelector?: Parameters<typeof selects>[0];
  };
  type Policy = Manifest & {
    spec: {
      podSelector: Parameters<typeof selects>[0];
      ingress: { ports: { port: string }[]; from: Peer[] }[];
    };
  };
  const policyOf = async (set: string[]) =>
    byKind(await renderChart('charts/wharf', { set }), 'NetworkPolicy') as Policy[];

  it('selects the pods the operator runs for an AuthService, and admits the Registries on the ports it names', async () => {
    const [policy] = await policyOf(['quickstart.enabled=true']);
    expect(policy!.metadata!.namespace).toBe('ops');
    const template = authPodLabels();
    expect(selects(policy!.spec.podSelector, template.metadata.labels)).toBe(true);
    expect(selects(policy!.spec.podSelector, registryPodLabels())).toBe(false);
    const [http, metrics] = policy!.spec.ingress;
    // The named ports exist on the AuthService container.
    const portNames = template.spec.containers[0]!.ports.map((port) => port.name);
    expect(portNames).toEqual(expect.arrayContaining([http!.ports[0]!.port, metrics!.ports[0]!.port]));
    expect([http!.ports[0]!.port, metrics!.ports[0]!.port]).toEqual(['http', 'metrics']);
    // Registries (same namespace: a peer without namespaceSelector) reach the HTTP port.
    const registryPeer = http!.from.find((peer) => !peer.namespaceSelector && peer.podSelector);
    expect(selects(registryPeer!.podSelector!, registryPodLabels())).toBe(true);
    // Nothing else of the namespace does: a random pod matches no peer.
    expect(
      http!.from.some((peer) => !peer.namespaceSelector && selects(peer.podSelector!, { app: 'other' })),
    ).toBe(false);
    // helm test's Pod, from the release namespace.
    const testPod = byKind(
      await renderChart('charts/wharf', { set: ['quickstart.enabled=true'] }),
      'Pod',
    )[0]!;
    const testPeer = http!.from.find((peer) => peer.namespaceSelector && peer.podSelector)!;
    expect(selects(testPeer.podSelector!, testPod.metadata!.labels!)).toBe(true);
    expect(selects(testPeer.namespaceSelector!, { 'kubernetes.io/metadata.name': 'ops' })).toBe(true);
    expect(metrics!.from).toEqual([{ namespaceSelector: {} }]);
  });

  it('is on by default only where it cannot break the quick start', async () => {
    // Not installed without the quick start nor a namespace to put it in.
    expect(await policyOf([])).toEqual([]);
    // The quick start without an Ingress: reached through port-forwards, which no policy filters.
    expect(await policyOf(['quickstart.enabled=true'])).toHaveLength(1);
    // With an Ingress host but no idea where the controller runs: off, logins keep working.
    expect(await policyOf(['quickstart.enabled=true', 'quickstart.registry.host=r.example.com'])).toEqual([]);
    expect(await policyOf(['quickstart.enabled=true', 'quickstart.authService.host=id.example.com'])).toEqual(
      [],
    );
    // AuthServices of watchNamespace may have Ingresses of their own the chart cannot see.
    expect(await policyOf(['watchNamespace=team'])).toEqual([]);
    // Told where the controller runs: on, and the controller's pods are a peer.
    const [hosted] = await policyOf([
      'quickstart.enabled=true',
      'quickstart.registry.host=r.example.com',
      ...CONTROLLER,
    ]);
    expect(hosted!.spec.ingress[0]!.from).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
    });
    const [scoped] = await policyOf(['watchNamespace=team', ...CONTROLLER]);
    expect(scoped!.metadata!.namespace).toBe('team');
    // Off when asked, whatever else is set.
    expect(await policyOf(['quickstart.enabled=true', 'networkPolicy.enabled=false'])).toEqual([]);
  });

  it('refuses `true` where it would shut logins out, with the value to set', async () => {
    await expect(
      policyOf([
        'quickstart.enabled=true',
        'quickstart.registry.host=r.example.com',
        'networkPolicy.enabled=true',
      ]),
    ).rejects.toThrow(/networkPolicy.ingressController/);
    await expect(policyOf(['networkPolicy.enabled=true'])).rejects.toThrow(
      /quickstart.enabled=true or watchNamespace/,
    );
    await expect(policyOf(['networkPolicy.enabled=maybe'])).rejects.toThrow(/networkPolicy.enabled/);
  });

  it('lets extraFrom peers (a RestAuth client) reach the HTTP port, and metricsFrom replace who scrapes', async () => {
    const [policy] = await policyOf([
      'quickstart.enabled=true',
      'networkPolicy.extraFrom[0].podSelector.matchLabels.app=wiki',
      'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring',
    ]);
    expect(policy!.spec.ingress[0]!.from).toContainEqual({ podSelector: { matchLabels: { app: 'wiki' } } });
    expect(policy!.spec.ingress[1]!.from).toEqual([
      { namespaceSelector: { matchLabels: { name: 'monitoring' } } },
    ]);
  });
});

describe('monitoring', () => {
  it('renders the ServiceMonitor and PodMonitor only when switched on', async () => {
    expect(names(await renderChart('charts/wharf')).filter((name) => /Monitor/.test(name))).toEqual([]);
    const on = await renderChart('charts/wharf', {
      set: [
        'metrics.serviceMonitor.enabled=true',
        'metrics.serverPodMonitor.enabled=true',
        'watchNamespace=team',
      ],
    });
    expect(names(on).filter((name) => /Monitor/.test(name))).toEqual([
      'PodMonitor/w-wharf-servers',
      'ServiceMonitor/w-wharf-operator',
    ]);
    // The ServiceMonitor selects the operator's metrics Service by its labels, on its port name.
    const monitor = byKind(on, 'ServiceMonitor')[0]! as Manifest & {
      spec: { selector: Parameters<typeof selects>[0]; endpoints: { port: string }[] };
    };
    const service = byKind(on, 'Service')[0]! as Manifest & { spec: { ports: { name: string }[] } };
    expect(selects(monitor.spec.selector, service.metadata!.labels!)).toBe(true);
    expect(service.spec.ports.map((port) => port.name)).toContain(monitor.spec.endpoints[0]!.port);
    const podMonitor = byKind(on, 'PodMonitor')[0]! as Manifest & { spec: { namespaceSelector: unknown } };
    expect(podMonitor.spec.namespaceSelector).toEqual({ matchNames: ['team'] });
  });
});

describe('helm test and the uninstall hook', () => {
  it("helm test's Pod asks the operator's /readyz and, with the quick start, each server's /healthz by Service", async () => {
    const pod = byKind(
      await renderChart('charts/wharf', { set: ['quickstart.enabled=true', 'quickstart.namespace=quick'] }),
      'Pod',
    )[0]! as Manifest & { spec: { containers: { command: string[] }[] } };
    expect(pod.metadata!.annotations).toMatchObject({ 'helm.sh/hook': 'test' });
    expect(pod.spec.containers[0]!.command.slice(3)).toEqual([
      'http://w-wharf-operator-metrics.ops.svc:8081/readyz',
      'http://wharf-auth.quick.svc:8080/healthz',
      'http://wharf-registry.quick.svc:8080/healthz',
    ]);
    expect(byKind(await renderChart('charts/wharf', { set: ['tests.enabled=false'] }), 'Pod')).toEqual([]);
  });

  it('runs the cleanup as a pre-delete hook Job with the script from files/, scoped like the operator', async () => {
    const objects = await renderChart('charts/wharf', { set: ['watchNamespace=team'] });
    const hooks = objects.filter((object) => object.metadata!.annotations?.['helm.sh/hook'] === 'pre-delete');
    expect(names(hooks)).toEqual([
      'ConfigMap/w-wharf-cleanup',
      'Job/w-wharf-cleanup',
      'Role/w-wharf-cleanup',
      'RoleBinding/w-wharf-cleanup',
      'ServiceAccount/w-wharf-cleanup',
    ]);
    const configMap = byKind(hooks, 'ConfigMap')[0]! as Manifest & { data: Record<string, string> };
    expect(configMap.data['delete-resources.mjs']).toBe(
      readFileSync(path.join(REPO_ROOT, 'charts/wharf/files/delete-resources.mjs'), 'utf8'),
    );
    const job = byKind(hooks, 'Job')[0]! as Manifest & {
      spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } };
    };
    expect(job.spec.template.spec.containers[0]!.env).toContainEqual({
      name: 'WHARF_WATCH_NAMESPACE',
      value: 'team',
    });
    expect(
      (await renderChart('charts/wharf', { set: ['cleanupOnUninstall.enabled=false'] })).filter(
        (object) => object.metadata!.annotations?.['helm.sh/hook'] === 'pre-delete',
      ),
    ).toEqual([]);
  });
});
