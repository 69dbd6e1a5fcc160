/** What every reconciler gets: the client, the caches, the event recorder and the defaults. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AuthService, OpenIdProvider, Registry } from '../api/types.ts';
import type { KubeClient } from '../kube/client.ts';
import type { Informer } from '../kube/informer.ts';
import type { EventRecorder } from '../runtime/events.ts';

export interface ReconcileContext {
  client: KubeClient;
  events: EventRecorder;
  log: Logger;
  caches: {
    providers: Informer<OpenIdProvider>;
    authServices: Informer<AuthService>;
    registries: Informer<Registry>;
    deployments: Informer<KubernetesObject>;
  };
  /** Image used when a resource does not name one. */
  defaultImage: string;
  /** How often external state (buckets, OpenID discovery) is re-checked. */
  externalRecheckMs: number;
  /** Lets the OpenIdProvider reconciler reach plain-http issuers (tests, in-cluster providers). */
  fetch: typeof fetch;
  /** Queues another resource, for changes its watch would not show (e.g. a ConfigMap it reads). */
  enqueue: (kind: 'OpenIdProvider' | 'AuthService' | 'Registry', key: string) => void;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Splits a queue key `namespace/name`. */
export function splitKey(key: string): { namespace: string; name: string } {
  const [namespace = '', name = ''] = key.split('/');
  return { namespace, name };
}
