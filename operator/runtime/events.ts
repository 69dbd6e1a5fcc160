/** Kubernetes Events about a resource (core/v1), as `kubectl describe` shows them. */
import { randomBytes } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import { type KubeClient, resourcePath } from '../kube/client.ts';

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly onError: (error: unknown) => void;

  constructor(client: KubeClient, component: string, onError: (error: unknown) => void) {
    this.client = client;
    this.component = component;
    this.onError = onError;
  }

  /** Never throws: an event that cannot be written must not fail the reconcile. */
  async record(
    object: KubernetesObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const { name, namespace, uid, resourceVersion } = object.metadata ?? {};
    const now = new Date().toISOString();
    try {
      await this.client.request('POST', resourcePath('v1', 'Event', namespace), {
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
    } catch (error) {
      this.onError(error);
    }
  }
}
