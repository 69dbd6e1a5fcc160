/**
 * What every reconciler gets: the client (for writes), the caches (for every read), the event
 * recorder and the defaults.
 */
import type { Logger } from 'pino';
import type { ObjectCache } from '../kube/cache.ts';
import type { KubeClient } from '../kube/client.ts';
import type { EventRecorder } from '../runtime/events.ts';
import type { Caches } from './caches.ts';
import type { S3Clients } from './s3-clients.ts';

export interface ReconcileContext {
  client: KubeClient;
  /** Reads by kind and name, served by `caches`. */
  cache: ObjectCache;
  caches: Caches;
  events: EventRecorder;
  log: Logger;
  /** Image used when a resource does not name one. */
  defaultImage: string;
  /** How often external state (buckets, OpenID discovery) is re-checked. */
  externalRecheckMs: number;
  /** S3 clients shared across reconciles, and which buckets passed their checks lately. */
  s3: S3Clients;
  /** Lets the OpenIdProvider reconciler reach plain-http issuers (tests, in-cluster providers). */
  fetch: typeof fetch;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Splits a queue key `namespace/name`. */
export function splitKey(key: string): { namespace: string; name: string } {
  const [namespace = '', name = ''] = key.split('/');
  return { namespace, name };
}
