/**
 * The chart's life against a real kube-apiserver + etcd with the real helm, the operator running as
 * the chart's ServiceAccount: first install with the quick start, the CRD chart adopting and then
 * upgrading the CRDs (the next version adds an optional field) with every resource kept, `helm test`,
 * and `helm uninstall` with AuthServices and Registries still present leaving nothing stuck.
 * There is no kubelet: the KUBELET STAND-INs (test/chart/hook-standin.ts for the hooks,
 * test/support/kubelet-standin.ts for the servers) run the pods' commands on this machine.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import type { AuthService, Registry } from '../../operator/api/types.ts';
import { resourcePath } from '../../operator/kube/client.ts';
import { BUCKET_FINALIZER } from '../../operator/reconcile/names.ts';
import {
  eventually,
  type Harness,
  OPERATOR_NAMESPACE,
  type RunningOperator,
  startHarness,
  wharfPath,
} from '../operator/harness.ts';
import {
  canRunPods,
  type Deployment,
  loopbackAddress,
  type Pod,
  startPod,
  waitReady,
} from '../support/kubelet-standin.ts';
import { REPO_ROOT } from '../support/tools.ts';
import { type JobLike, type PodLike, runJob, runPod } from './hook-standin.ts';

const NS = OPERATOR_NAMESPACE; // the release's namespace: the harness's operator user is its ServiceAccount
const TEAM = 'team';
const CRD = (plural: string) => `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.wharf.dev`;
type Crd = KubernetesObject & {
  spec: {
    versions: {
      schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } };
    }[];
  };
};

let h: Harness;
let operator: RunningOperator | undefined;
const operatorAddress = loopbackAddress();
let work: string;
let nextCrds: string;
let nextChart: string;
/** uid of every custom resource at the start, by "plural/namespace/name". */
const uids = new Map<string, string>();

const resources = () => [
  wharfPath('AuthService', NS, 'wharf'),
  wharfPath('Registry', NS, 'wharf'),
  wharfPath('AuthService', TEAM, 'team-auth'),
  wharfPath('Registry', TEAM, 'team-crates'),
];

function startOperator() {
  return h.startOperator({ host: operatorAddress, port: 8081 });
}

/** A copy of a chart as its next version: `edit` changes files in the copy. */
async function nextVersion(chart: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = path.join(work, path.basename(chart));
  await cp(path.join(REPO_ROOT, chart), dir, { recursive: true });
  const chartFile = path.join(dir, 'Chart.yaml');
  await writeFile(chartFile, (await readFile(chartFile, 'utf8')).replace(/^version: .*$/m, 'version: 0.2.0'));
  await edit(dir);
  return dir;
}

/** The next version's Registry CRD: an optional spec.comment, which this version's CRD prunes. */
async function addCommentField(file: string) {
  const doc = parseDocument(await readFile(file, 'utf8'));
  doc.setIn(
    ['spec', 'versions', 0, 'schema', 'openAPIV3Schema', 'properties', 'spec', 'properties', 'comment'],
    doc.createNode({ type: 'string', maxLength: 200 }),
  );
  await writeFile(file, doc.toString({ lineWidth: 0 }));
}

/** Runs `helm …` to its end while the stand-in runs the hook Job it waits for. */
async function withHookJob(helmArgs: string[], jobName: string) {
  const helm = h.helm(...helmArgs).then(
    (output) => ({ ok: true as const, output }),
    (error: Error) => ({ ok: false as const, output: error.message }),
  );
  // A Job not yet run (a failed one from an earlier attempt waits for helm to replace it).
  const job = await eventually(
    async () => {
      const current = await h.admin.get<JobLike & { status?: { conditions?: unknown[] } }>(
        `/apis/batch/v1/namespaces/${NS}/jobs/${jobName}`,
      );
      return !current?.status?.conditions?.length && current;
    },
    `hook Job ${jobName}`,
    60_000,
  );
  const run = await runJob(h.plane, h.admin, job);
  return { run, helm: await helm };
}

describe.runIf(canRunPods())('the chart over its life (kubelet stand-in)', () => {
  beforeAll(async () => {
    if (!existsSync(path.join(REPO_ROOT, 'dist/server/main.js')))
      throw new Error('the servers run from dist/: npm run build first');
    h = await startHarness();
    work = await mkdtemp(path.join(tmpdir(), 'wharf-chart-next-'));
    await h.helm(
      'install',
      'wharf',
      'charts/wharf',
      '--namespace',
      NS,
      '--create-namespace',
      '--set',
      'quickstart.enabled=true,leaderElection.enabled=false',
    );
    operator = await startOperator();
    // Resources nobody's chart made: a team's own AuthService and Registry.
    await h.admin.request('POST', '/api/v1/namespaces', {
      body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: TEAM } },
    });
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'team-auth', namespace: TEAM },
      spec: { storage: { mode: 'volume', deletionPolicy: 'Delete' } },
    } as KubernetesObject);
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'team-crates', namespace: TEAM },
      spec: { authServiceRef: { name: 'team-auth' }, storage: { mode: 'volume' } },
    } as KubernetesObject);
    for (const resource of resources()) {
      const object = await eventually(async () => {
        const current = await h.admin.get(resource);
        return current?.metadata?.finalizers?.includes(BUCKET_FINALIZER) && current;
      }, `${resource} finalized by the operator`);
      uids.set(resource, object.metadata!.uid!);
    }
    nextCrds = await nextVersion('charts/wharf-crds', (dir) =>
      addCommentField(path.join(dir, 'files/registries.yaml')),
    );
    nextChart = await nextVersion('charts/wharf', (dir) =>
      addCommentField(path.join(dir, 'crds/registries.yaml')),
    );
  }, 300_000);

  afterAll(async () => {
    await h?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('CRD upgrades', () => {
    it('the CRD chart adopts the CRDs the first install made, once told to take them over', async () => {
      const before = (await h.admin.get(CRD('registries')))!;
      expect(before.metadata!.labels?.['helm.sh/chart']).toBeUndefined();
      // An upgrade of the operator's chart over them says what to do first.
      const warned = await h.helm('upgrade', 'wharf', 'charts/wharf', '--namespace', NS, '--reuse-values');
      expect(warned).toContain(
        'WARNING: the wharf CRDs are those a first install created from crds/, which Helm never upgrades',
      );
      expect(warned).toContain('helm upgrade --install wharf-crds charts/wharf-crds --take-ownership');
      await expect(h.helm('install', 'wharf-crds', 'charts/wharf-crds')).rejects.toThrow(
        /exists and cannot be imported into the current release/,
      );
      await h.helm('upgrade', '--install', 'wharf-crds', 'charts/wharf-crds', '--take-ownership');
      for (const plural of ['openidproviders', 'authservices', 'registries']) {
        const crd = (await h.admin.get(CRD(plural)))!;
        expect(crd.metadata!.labels?.['helm.sh/chart']).toBe('wharf-crds-0.1.0');
        expect(crd.metadata!.annotations?.['helm.sh/resource-policy']).toBe('keep');
        expect(crd.metadata!.uid).toBe(plural === 'registries' ? before.metadata!.uid : crd.metadata!.uid);
      }
      expect(
        await h.helm('upgrade', 'wharf', 'charts/wharf', '--namespace', NS, '--reuse-values'),
      ).not.toContain('WARNING');
    });

    it('helm upgrade to the next version adds the new field and keeps every resource as it was', async () => {
      // This version's CRD prunes the field the next one adds.
      await h.admin.mergePatch(wharfPath('Registry', TEAM, 'team-crates'), {
        spec: { comment: 'too early' },
      });
      expect(
        (await h.admin.get<Registry>(wharfPath('Registry', TEAM, 'team-crates')))!.spec,
      ).not.toHaveProperty('comment');
      const specs = new Map<string, unknown>();
      for (const resource of resources()) specs.set(resource, (await h.admin.get<Registry>(resource))!.spec);

      // The operator's chart first: its NOTES say the CRDs are behind.
      const behind = await h.helm('upgrade', 'wharf', nextChart, '--namespace', NS, '--reuse-values');
      expect(behind).toContain("WARNING: the wharf CRDs are wharf-crds-0.1.0's,\nnot wharf-crds-0.2.0's");
      await h.helm('upgrade', 'wharf-crds', nextCrds);
      expect(await h.helm('upgrade', 'wharf', nextChart, '--namespace', NS, '--reuse-values')).not.toContain(
        'WARNING',
      );

      const crd = (await h.admin.get<Crd>(CRD('registries')))!;
      expect(crd.metadata!.labels?.['helm.sh/chart']).toBe('wharf-crds-0.2.0');
      expect(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties.comment).toEqual({
        type: 'string',
        maxLength: 200,
      });
      for (const resource of resources()) {
        const object = (await h.admin.get<Registry>(resource))!;
        expect(object.metadata!.uid, resource).toBe(uids.get(resource));
        expect(object.spec, resource).toEqual(specs.get(resource));
        expect(object.metadata!.finalizers).toContain(BUCKET_FINALIZER);
      }
      // The new field is stored now; the release's own resources went through the upgrade too.
      await eventually(async () => {
        await h.admin.mergePatch(wharfPath('Registry', TEAM, 'team-crates'), { spec: { comment: 'kept' } });
        return (
          (await h.admin.get<Registry & { spec: { comment?: string } }>(
            wharfPath('Registry', TEAM, 'team-crates'),
          ))!.spec.comment === 'kept'
        );
      }, 'spec.comment stored');
      expect(await h.helm('history', 'wharf', '--namespace', NS, '--max', '1')).toMatch(/wharf-0\.2\.0/);
    });
  });

  describe('helm test', () => {
    let pods: Pod[] = [];
    const addresses = { 'wharf-auth': loopbackAddress(), 'wharf-registry': loopbackAddress() };
    const hosts = {
      [`wharf-operator-metrics.${NS}.svc`]: operatorAddress,
      [`wharf-auth.${NS}.svc`]: addresses['wharf-auth'],
      [`wharf-registry.${NS}.svc`]: addresses['wharf-registry'],
    };
    let volumes: string;

    beforeAll(async () => {
      volumes = await mkdtemp(path.join(tmpdir(), 'wharf-chart-volumes-'));
      const claims: Record<string, string> = {};
      for (const claim of ['wharf-auth-data', 'wharf-registry-data']) {
        claims[claim] = path.join(volumes, claim);
        await mkdir(claims[claim]!);
      }
      for (const name of ['wharf-auth', 'wharf-registry'] as const) {
        const deployment = await eventually(
          () => h.admin.get<Deployment>(resourcePath('apps/v1', 'Deployment', NS, name)),
          `Deployment ${name}`,
        );
        pods.push(await startPod(h.admin, deployment, addresses[name], hosts, claims));
      }
      for (const pod of pods) await waitReady(pod);
    }, 120_000);

    afterAll(async () => {
      for (const pod of pods) await pod.stop();
      pods = [];
      if (volumes) await rm(volumes, { recursive: true, force: true });
    });

    const helmTest = async () => {
      const helm = h.helm('test', 'wharf', '--namespace', NS).then(
        (output) => ({ ok: true, output }),
        (error: Error) => ({ ok: false, output: error.message }),
      );
      const pod = await eventually(
        async () => {
          const current = await h.admin.get<PodLike & { status?: { phase?: string } }>(
            `/api/v1/namespaces/${NS}/pods/wharf-test-health`,
          );
          return current?.status?.phase !== 'Succeeded' && current?.status?.phase !== 'Failed' && current;
        },
        'the test Pod',
        60_000,
      );
      const run = await runPod(h.plane, h.admin, pod, hosts);
      return { run, helm: await helm };
    };

    it("passes when the operator and the quick start's servers answer through their Services", async () => {
      const { run, helm } = await helmTest();
      expect(run.output).toContain(`http://wharf-operator-metrics.${NS}.svc:8081/readyz: 200`);
      expect(run.output).toContain(`http://wharf-auth.${NS}.svc:8080/healthz: 200`);
      expect(run.output).toContain(`http://wharf-registry.${NS}.svc:8080/healthz: 200`);
      expect(helm.ok, helm.output).toBe(true);
      expect(helm.output).toMatch(/TEST SUITE:\s+wharf-test-health[\s\S]*Phase:\s+Succeeded/);
    });

    it('fails, naming the server that does not answer', async () => {
      await pods.find((pod) => pod.name === 'wharf-registry')!.stop();
      const { run, helm } = await helmTest();
      expect(run.code).toBe(1);
      expect(run.output).toContain(`http://wharf-auth.${NS}.svc:8080/healthz: 200`);
      expect(run.output).toMatch(new RegExp(`http://wharf-registry\\.${NS}\\.svc:8080/healthz: (?!200)`));
      expect(helm.ok).toBe(false);
      expect(helm.output).toMatch(/wharf-test-health.*failed|phase.*Failed/i);
    });
  });

  describe('helm uninstall', () => {
    it('with the operator down, the hook fails in time naming what is left, and leaves the operator installed', async () => {
      await h.helm(
        'upgrade',
        'wharf',
        nextChart,
        '--namespace',
        NS,
        '--reuse-values',
        '--set',
        'cleanupOnUninstall.timeoutSeconds=10',
      );
      await operator!.stop();
      operator = undefined;
      const { run, helm } = await withHookJob(['uninstall', 'wharf', '--namespace', NS], 'wharf-cleanup');
      expect(run.code).toBe(1);
      expect(run.output).toContain(`deleted registries/${TEAM}/team-crates`);
      expect(run.output).toMatch(
        /the operator did not finalize in time: registries\/\S+ \(finalizers: wharf\.dev\/bucket\)/,
      );
      expect(helm.ok).toBe(false);
      expect(helm.output).toMatch(/job wharf-cleanup failed: BackoffLimitExceeded/);
      // Nothing was taken away: the operator's Deployment and its permissions are still there.
      expect(await h.admin.get(resourcePath('apps/v1', 'Deployment', NS, 'wharf-operator'))).toBeTruthy();
      expect(
        await h.admin.get('/apis/rbac.authorization.k8s.io/v1/clusterroles/wharf-operator'),
      ).toBeTruthy();
      for (const resource of resources()) expect(await h.admin.get(resource), resource).toBeTruthy();
    }, 120_000);

    it('with the operator up, deletes every resource it manages, waits for their finalizers, and leaves nothing stuck', async () => {
      operator = await startOperator();
      const { run, helm } = await withHookJob(['uninstall', 'wharf', '--namespace', NS], 'wharf-cleanup');
      expect(run.code, run.output).toBe(0);
      // The Registries were being deleted since the first attempt; the AuthServices go now.
      expect(run.output).toContain('no registries left');
      expect(run.output).toContain(`deleted authservices/${NS}/wharf`);
      expect(run.output).toContain(`deleted authservices/${TEAM}/team-auth`);
      expect(helm.ok, helm.output).toBe(true);
      expect(helm.output).toMatch(/release "wharf" uninstalled/);
      for (const kind of ['AuthService', 'Registry', 'OpenIdProvider'] as const) {
        const left = await h.admin.list<AuthService>(resourcePath('wharf.dev/v1alpha1', kind));
        expect(left.items, kind).toEqual([]);
      }
      // The release is gone, the hook's own objects with it (hook-succeeded).
      expect(await h.admin.get(resourcePath('apps/v1', 'Deployment', NS, 'wharf-operator'))).toBeUndefined();
      expect(
        await h.admin.get('/apis/rbac.authorization.k8s.io/v1/clusterroles/wharf-cleanup'),
      ).toBeUndefined();
      expect(await h.admin.get(`/apis/batch/v1/namespaces/${NS}/jobs/wharf-cleanup`)).toBeUndefined();
      expect(await h.admin.get(`/api/v1/namespaces/${NS}/configmaps/wharf-cleanup`)).toBeUndefined();
      // Each claim went as its resource said: the quick start's Retain kept its data, the team's
      // AuthService (Delete) took its claim along.
      expect(
        await h.admin.get(resourcePath('v1', 'PersistentVolumeClaim', NS, 'wharf-registry-data')),
      ).toBeTruthy();
      const deleted = await h.admin.get(
        resourcePath('v1', 'PersistentVolumeClaim', TEAM, 'team-auth-auth-data'),
      );
      expect(deleted === undefined || deleted.metadata?.deletionTimestamp !== undefined).toBe(true);
      // The CRDs stay: crds/ are never deleted by helm, and the CRD chart keeps them too.
      await h.helm('uninstall', 'wharf-crds');
      for (const plural of ['openidproviders', 'authservices', 'registries'])
        expect(await h.admin.get(CRD(plural)), plural).toBeTruthy();
    }, 120_000);
  });
});
