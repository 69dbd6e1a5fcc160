/** Helpers for the chart tests: render with the real helm, and hand manifests to a real apiserver. */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { KubeClient } from '../../operator/kube/client.ts';
import { REPO_ROOT, toolPath } from '../support/tools.ts';

const run = promisify(execFile);

export type Manifest = KubernetesObject & Record<string, unknown>;

/** `helm template` with the chart's hooks and test Pods included, as parsed objects. */
export async function renderChart(
  chart: string,
  options: { namespace?: string; set?: string[]; release?: string } = {},
): Promise<Manifest[]> {
  const { stdout } = await run(
    await toolPath('helm'),
    [
      'template',
      options.release ?? 'w',
      chart,
      '--namespace',
      options.namespace ?? 'ops',
      ...(options.set ?? []).flatMap((value) => ['--set', value]),
    ],
    { cwd: REPO_ROOT, maxBuffer: 32 * 1024 * 1024 },
  );
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((object): object is Manifest => Boolean(object));
}

export const helmRun = async (...args: string[]) =>
  (await run(await toolPath('helm'), args, { cwd: REPO_ROOT, maxBuffer: 32 * 1024 * 1024 })).stdout;

/** Creates the CRDs of every YAML file in a directory and waits until the apiserver serves them. */
export async function installCrds(admin: KubeClient, dir: string): Promise<void> {
  const files = readdirSync(dir).filter((file) => file.endsWith('.yaml'));
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'))) {
      const crd = doc.toJS() as Manifest | null;
      if (!crd) continue;
      await admin.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd });
      const name = crd.metadata!.name!;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const current = await admin.get<
          Manifest & { status?: { conditions?: { type: string; status: string }[] } }
        >(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
        if (current?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) throw new Error(`CRD ${name} not established`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

/**
 * The apiserver's collection path of an object's kind, from its own discovery documents (any kind it
 * serves, CRDs included), and whether the kind is namespaced.
 */
export function discovery(admin: KubeClient) {
  const cache = new Map<string, Promise<{ name: string; kind: string; namespaced: boolean }[]>>();
  return async (object: Manifest): Promise<string> => {
    const apiVersion = object.apiVersion!;
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let resources = cache.get(base);
    if (!resources) {
      resources = admin
        .request<{ resources: { name: string; kind: string; namespaced: boolean }[] }>('GET', base)
        .then((list) => list.resources);
      cache.set(base, resources);
    }
    const resource = (await resources).find((item) => item.kind === object.kind && !item.name.includes('/'));
    if (!resource) throw new Error(`the apiserver serves no ${apiVersion} ${object.kind}`);
    const namespace = object.metadata?.namespace;
    if (resource.namespaced && !namespace)
      throw new Error(`${object.kind} ${object.metadata?.name} lacks a namespace`);
    return `${base}${resource.namespaced ? `/namespaces/${namespace}` : ''}/${resource.name}`;
  };
}

/**
 * Server-side dry-run create with strict field validation: the apiserver checks the object against
 * its schema (built-in or CRD, unknown and duplicate fields rejected) and runs admission, storing
 * nothing. Returns the error message, or undefined when the object would be accepted.
 */
export async function dryRunCreate(
  admin: KubeClient,
  collectionOf: (object: Manifest) => Promise<string>,
  object: Manifest,
): Promise<string | undefined> {
  try {
    await admin.request('POST', await collectionOf(object), {
      body: object,
      query: { dryRun: 'All', fieldValidation: 'Strict' },
    });
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Whether a label selector (matchLabels and matchExpressions) selects these labels. */
export function selects(
  selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  },
  labels: Record<string, string>,
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {}))
    if (labels[key] !== value) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = key in labels;
    const ok =
      operator === 'In'
        ? present && values.includes(labels[key]!)
        : operator === 'NotIn'
          ? !present || !values.includes(labels[key]!)
          : operator === 'Exists'
            ? present
            : !present;
    if (!ok) return false;
  }
  return true;
}
