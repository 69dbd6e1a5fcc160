import { namespaceOf } from '../names.ts';
import type { OciProxySettings } from '../settings.ts';
import { ProxyCache, type ProxyDependencies } from './cache.ts';

/** The configured pull-through caches, found by the namespace of a repository name. */
export class Proxies {
  private readonly byNamespace = new Map<string, ProxyCache>();

  constructor(settings: OciProxySettings[], deps: ProxyDependencies) {
    for (const proxy of settings) this.byNamespace.set(proxy.namespace, new ProxyCache(proxy, deps));
  }

  /** The cache serving `repository`, or undefined for an ordinary repository. */
  of(repository: string): ProxyCache | undefined {
    return this.byNamespace.get(namespaceOf(repository));
  }

  all(): ProxyCache[] {
    return [...this.byNamespace.values()];
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((proxy) => proxy.close()));
  }
}
