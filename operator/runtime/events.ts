/**
 * Kubernetes Events about a resource (core/v1), as `kubectl describe` shows them.
 *
 * Recording does not wait for the apiserver, as client-go's recorder does not: an event is queued
 * and written in the background, a few at a time, so a reconcile that records three events does
 * not spend three round trips on them. The queue is bounded (client-go's 1000): past that, events
 * are dropped rather than memory growing while the apiserver is away or slow; onError says so once
 * when dropping starts and once with the count when the queue has drained.
 */
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type KubeClient, resourcePath } from '../kube/client.ts';

const MAX_PENDING = 1000;
const WRITERS = 4;

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly onError: (error: unknown) => void;
  private readonly pending: { namespace: string | undefined; body: Record<string, unknown> }[] = [];
  private writers = 0;
  private dropped = 0;
  private readonly idle: (() => void)[] = [];

  constructor(client: KubeClient, component: string, onError: (error: unknown) => void) {
    this.client = client;
    this.component = component;
    this.onError = onError;
  }

  /** Queues the event; never throws (an event that cannot be written must not fail the reconcile). */
  async record(
    object: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const { name, namespace, uid, resourceVersion } = object.metadata ?? {};
    if (this.pending.length >= MAX_PENDING) {
      if (this.dropped++ === 0)
        this.onError(
          new Error(
            `event queue full (${MAX_PENDING}): dropping events, the first ${reason} for ${namespace}/${name}`,
          ),
        );
      return;
    }
    const now = new Date().toISOString();
    this.pending.push({
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
        involvedObject: {
          apiVersion: object.apiVersion,
          kind: object.kind,
          name,
          namespace,
          uid,
          resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.component,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
    while (this.writers < WRITERS && this.writers < this.pending.length) {
      this.writers++;
      void this.write();
    }
  }

  /** Resolves once every queued event has been written (or has failed). */
  flush(): Promise<void> {
    if (this.writers === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async write(): Promise<void> {
    for (let event = this.pending.shift(); event; event = this.pending.shift()) {
      try {
        await this.client.request('POST', resourcePath('v1', 'Event', event.namespace), { body: event.body });
      } catch (error) {
        this.onError(error);
      }
    }
    this.writers--;
    if (this.writers > 0) return;
    if (this.dropped > 0) {
      this.onError(new Error(`dropped ${this.dropped} events while the event queue was full`));
      this.dropped = 0;
    }
    for (const resolve of this.idle.splice(0)) resolve();
  }
}
