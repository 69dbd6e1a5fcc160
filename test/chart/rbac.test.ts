/**
 * The chart's namespaced RBAC against a real kube-apiserver: installed with watchNamespace, the
 * operator (running as the chart's ServiceAccount, with leader election on its Lease) reconciles
 * the resources of that namespace with the Role alone (not one request refused) and can read
 * nothing of any other namespace.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourcePath } from '../../operator/kube/client.ts';
import { BUCKET_FINALIZER } from '../../operator/reconcile/names.ts';
import {
  condition,
  eventually,
  type Harness,
  markDeploymentsAvailable,
  OPERATOR_NAMESPACE,
  startHarness,
  wharfPath,
} from '../operator/harness.ts';

const WATCHED = 'team';
const OTHER = 'elsewhere';
let h: Harness;
const refused: string[] = [];

describe('with watchNamespace, a Role is all the operator has, and all it needs', () => {
  beforeAll(async () => {
    h = await startHarness();
    for (const name of [WATCHED, OTHER])
      await h.admin.request('POST', '/api/v1/namespaces', {
        body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
      });
    await h.helm(
      'install',
      'wharf',
      'charts/wharf',
      '--namespace',
      OPERATOR_NAMESPACE,
      '--create-namespace',
      '--set',
      `watchNamespace=${WATCHED},quickstart.enabled=true,quickstart.namespace=${WATCHED}`,
    );
    const operator = await h.startOperator({
      watchNamespace: WATCHED,
      leaderElection: {
        namespace: OPERATOR_NAMESPACE,
        name: 'wharf-operator',
        identity: 'replica-a',
        leaseDurationSeconds: 4,
        renewDeadlineSeconds: 3,
        retryPeriodSeconds: 1,
      },
    });
    operator.client.observe((verb, path, status) => {
      if (status === 403) refused.push(`${verb} ${path}`);
    });
  }, 300_000);

  afterAll(async () => {
    await h?.stop();
  });

  it('installs no ClusterRole, and the Role binds the operator in the watched namespace only', async () => {
    expect(
      await h.admin.get('/apis/rbac.authorization.k8s.io/v1/clusterroles/wharf-operator'),
    ).toBeUndefined();
    expect(
      await h.admin.get('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/wharf-operator'),
    ).toBeUndefined();
    expect(
      await h.admin.get(`/apis/rbac.authorization.k8s.io/v1/namespaces/${WATCHED}/roles/wharf-operator`),
    ).toBeTruthy();
  });

  it('reconciles the quick start in the watched namespace to Ready without a single refused request', async () => {
    await eventually(
      async () => {
        await markDeploymentsAvailable(h.admin, WATCHED);
        return (
          condition(await h.admin.get(wharfPath('Registry', WATCHED, 'wharf')), 'Ready')?.status === 'True'
        );
      },
      'quick start Ready in the watched namespace',
      60_000,
    );
    const auth = await h.admin.get(wharfPath('AuthService', WATCHED, 'wharf'));
    expect(condition(auth as never, 'Ready')?.status).toBe('True');
    expect(auth?.metadata?.finalizers).toContain(BUCKET_FINALIZER);
    expect(
      await h.admin.get(resourcePath('v1', 'PersistentVolumeClaim', WATCHED, 'wharf-auth-data')),
    ).toBeTruthy();
    // Deleting goes through the finalizer with the same Role (the claim's delete included).
    await h.admin.request('PATCH', wharfPath('Registry', WATCHED, 'wharf'), {
      body: { spec: { storage: { deletionPolicy: 'Delete' } } },
      contentType: 'application/merge-patch+json',
    });
    await h.admin.delete(wharfPath('Registry', WATCHED, 'wharf'));
    await eventually(
      async () => !(await h.admin.get(wharfPath('Registry', WATCHED, 'wharf'))),
      'Registry finalized',
    );
    expect(refused).toEqual([]);
  });

  it('can read nothing outside it: the apiserver refuses the operator there', async () => {
    await h.admin.create({
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'AuthService',
      metadata: { name: 'outside', namespace: OTHER },
      spec: { storage: { mode: 'volume' } },
    } as KubernetesObject);
    const client = h.operatorClient();
    for (const path of [
      wharfPath('AuthService', OTHER),
      resourcePath('wharf.dev/v1alpha1', 'AuthService'),
      resourcePath('v1', 'Secret', OTHER),
      resourcePath('apps/v1', 'Deployment', OTHER),
    ])
      await expect(client.list(path), path).rejects.toThrow(/403/);
    // And it does not try: the AuthService elsewhere stays untouched.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const outside = await h.admin.get(wharfPath('AuthService', OTHER, 'outside'));
    expect(outside?.metadata?.finalizers).toBeUndefined();
    expect(refused).toEqual([]);
  });
});
