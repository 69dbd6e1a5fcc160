import type { Logger } from 'pino';
import type { IdentityClient } from '../../../identity/principal.ts';
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

/**
 * Logs a warning for each proxy namespace that is also a user's or a group's name: the proxy wins
 * (its repositories are the upstream's, read-only for everyone), so that account can no longer
 * push to its own namespace. Checked at startup, in the background: a slow or unreachable identity
 * service must not hold the server up.
 */
export async function warnNamespaceCollisions(
  proxies: readonly { namespace: string }[],
  identity: Pick<IdentityClient, 'userExists' | 'groupExists'>,
  logger: Logger,
): Promise<void> {
  for (const { namespace } of proxies) {
    try {
      const [user, group] = await Promise.all([
        identity.userExists(namespace),
        identity.groupExists(namespace),
      ]);
      if (user || group)
        logger.warn(
          { proxy: namespace, collidesWith: user ? 'user' : 'group' },
          `proxy namespace ${namespace} is also the name of a ${user ? 'user' : 'group'}: the pull-through cache takes the namespace, and its owner can no longer push there (rename the proxy's namespace)`,
        );
    } catch (error) {
      logger.debug({ proxy: namespace, err: error }, 'could not check the proxy namespace against accounts');
    }
  }
}
