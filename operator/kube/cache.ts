/**
 * Reads served from informer caches, as controller-runtime's cache-backed client serves them: a
 * reconcile reads every object it looks at from memory, so a resync that changes nothing makes no
 * API call. Only kinds with an informer can be read; asking for another is a programming error.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Informer, keyOf } from './informer.ts';

export class ObjectCache {
  private readonly byKind = new Map<string, Informer<KubernetesObject>>();

  constructor(
    informers: Iterable<{ apiVersion: string; kind: string; informer: Informer<KubernetesObject> }>,
  ) {
    for (const { apiVersion, kind, informer } of informers)
      this.byKind.set(`${apiVersion}/${kind}`, informer);
  }

  /** The cached object, or undefined when the cache has none (not there, or not selected). */
  get<T extends KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace: string,
    name: string,
  ): T | undefined {
    const informer = this.byKind.get(`${apiVersion}/${kind}`);
    if (!informer) throw new Error(`no informer caches ${apiVersion}/${kind}`);
    return informer.get(`${namespace}/${name}`) as T | undefined;
  }

  /** The cached version of an object named like `object`. */
  getLike<T extends KubernetesObject>(object: KubernetesObject): T | undefined {
    const [namespace, name] = keyOf(object).split('/') as [string, string];
    return this.get<T>(object.apiVersion!, object.kind!, namespace, name);
  }
}
