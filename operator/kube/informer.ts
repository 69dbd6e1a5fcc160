/**
 * List-then-watch cache of one resource type. Any watch failure (connection lost, apiserver restart,
 * 410 Gone) leads to a fresh list after a backoff, so the cache and handlers converge again: handlers
 * see an `upsert` for every object present after the relist and a `delete` for those that vanished.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeClient } from './client.ts';

/** `previous` is the cached version an update replaces, so a handler can map the old references too. */
export type InformerHandler<T> = (event: 'upsert' | 'delete', object: T, previous?: T) => void;

export interface InformerOptions {
  labelSelector?: string;
  fieldSelector?: string;
  onError?: (error: unknown) => void;
}

export function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export class Informer<T extends KubernetesObject> {
  private readonly client: KubeClient;
  private readonly path: string;
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private readonly onError: (error: unknown) => void;
  private readonly query: Record<string, string>;
  private stopped = false;
  private abort: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private syncedOnce = false;
  private readonly syncWaiters: (() => void)[] = [];
  relists = 0;

  constructor(
    client: KubeClient,
    path: string,
    { labelSelector, fieldSelector, onError = () => {} }: InformerOptions = {},
  ) {
    this.client = client;
    this.path = path;
    this.onError = onError;
    this.query = {
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    };
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get hasSynced(): boolean {
    return this.syncedOnce;
  }

  /** Resolves once the first list is in the cache. */
  waitForSync(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    this.stopped = false;
    void this.listAndWatch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.abort?.abort();
  }

  private emit(event: 'upsert' | 'delete', object: T, previous?: T): void {
    for (const handler of this.handlers) handler(event, object, previous);
  }

  /** Stores an object without its managedFields: nothing reads them, and they are most of its size. */
  private store(key: string, object: T): T | undefined {
    const previous = this.cache.get(key);
    if (object.metadata?.managedFields) delete object.metadata.managedFields;
    this.cache.set(key, object);
    return previous;
  }

  private async listAndWatch(): Promise<void> {
    if (this.stopped) return;
    let resourceVersion: string;
    try {
      const list = await this.client.list<T>(this.path, this.query);
      resourceVersion = list.metadata.resourceVersion;
      const seen = new Set<string>();
      for (const item of list.items) {
        const key = keyOf(item);
        seen.add(key);
        this.emit('upsert', item, this.store(key, item));
      }
      for (const [key, object] of this.cache) {
        if (!seen.has(key)) {
          this.cache.delete(key);
          this.emit('delete', object);
        }
      }
      this.relists++;
      if (!this.syncedOnce) {
        this.syncedOnce = true;
        for (const resolve of this.syncWaiters.splice(0)) resolve();
      }
    } catch (error) {
      this.retry(error);
      return;
    }
    this.watchFrom(resourceVersion);
  }

  /** Watches from a version; a clean server-side close resumes, anything else relists. */
  private watchFrom(initialVersion: string): void {
    if (this.stopped) return;
    let resourceVersion = initialVersion;
    let expired = false;
    let ended = false;
    const done = (error?: unknown) => {
      if (ended) return;
      ended = true;
      if (this.stopped) return;
      if (error || expired) this.retry(error ?? new Error('watch expired (410 Gone)'));
      else {
        this.failures = 0;
        this.watchFrom(resourceVersion);
      }
    };
    this.client
      .watch(
        this.path,
        { ...this.query, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
        (type, object) => {
          if (type === 'ERROR') {
            expired = true;
            this.abort?.abort();
            return;
          }
          const rv = object.metadata?.resourceVersion;
          if (rv) resourceVersion = rv;
          if (type === 'BOOKMARK') return;
          const typed = object as T;
          const key = keyOf(typed);
          if (type === 'DELETED') {
            this.cache.delete(key);
            this.emit('delete', typed);
          } else this.emit('upsert', typed, this.store(key, typed));
        },
        done,
      )
      .then((controller) => {
        this.abort = controller;
        if (this.stopped) controller.abort();
      }, done);
  }

  private retry(error: unknown): void {
    if (this.stopped) return;
    if (error) this.onError(error);
    this.failures++;
    const delay = Math.min(100 * 2 ** Math.min(this.failures, 8), 10_000);
    this.retryTimer = setTimeout(() => void this.listAndWatch(), delay);
  }
}
