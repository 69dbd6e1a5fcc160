/**
 * Leader election on a coordination.k8s.io Lease, as client-go does it: take the Lease when it is
 * free or expired, renew it well before it expires, and use resourceVersion (optimistic
 * concurrency) so two candidates can never both win. Losing the Lease stops the work at once.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isConflict, type KubeClient, resourcePath } from './client.ts';

/** Which Lease, who is asking, and client-go's three timings. */
export interface LeaseSettings {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

export interface LeaderElectionOptions extends LeaseSettings {
  client: KubeClient;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

interface Lease extends KubernetesObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const microTime = (date: Date) => date.toISOString().replace('Z', '000Z');

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenew = 0;
  private stopped = false;
  /** The election round in progress: stop() waits for it, so a renewal cannot land after the release. */
  private ticking: Promise<void> = Promise.resolve();

  constructor(options: LeaderElectionOptions) {
    this.options = options;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.ticking = this.tick();
  }

  /** Gives the Lease up (so a standby takes over at once) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // A renewal still in flight would otherwise change the Lease under the release (a conflict,
    // so the Lease stays held until it expires) or, landing after it, take the Lease back.
    await this.ticking;
    if (!this.leading) return;
    this.setLeading(false);
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.read();
        if (lease?.spec?.holderIdentity !== this.options.identity) return;
        await this.options.client.request('PUT', this.path(), {
          body: {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: '',
              leaseDurationSeconds: 1,
              renewTime: microTime(new Date()),
            },
          },
        });
        return;
      } catch (error) {
        if (isConflict(error) && attempt < 3) continue;
        this.options.log.warn({ err: error }, 'could not release the leader Lease');
        return;
      }
    }
  }

  private path(name?: string): string {
    return resourcePath('coordination.k8s.io/v1', 'Lease', this.options.namespace, name ?? this.options.name);
  }

  private read(): Promise<Lease | undefined> {
    return this.options.client.get<Lease>(this.path());
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const { retryPeriodSeconds, renewDeadlineSeconds, log } = this.options;
    try {
      await this.tryAcquireOrRenew();
    } catch (error) {
      if (!isConflict(error)) log.warn({ err: error }, 'leader election request failed');
      if (this.leading && Date.now() - this.lastRenew > renewDeadlineSeconds * 1000) {
        log.error('could not renew the leader Lease in time: stepping down');
        this.setLeading(false);
      }
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick();
    }, retryPeriodSeconds * 1000);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { client, identity, leaseDurationSeconds, namespace, name } = this.options;
    const now = new Date();
    const lease = await this.read();
    if (!lease) {
      await client.create<Lease>({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      });
      this.lastRenew = Date.now();
      this.setLeading(true);
      return;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewedAt = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewedAt + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000 < now.getTime();
    if (holder !== identity && holder !== '' && !expired) {
      if (this.leading) this.setLeading(false);
      return;
    }
    const taking = holder !== identity;
    await client.request('PUT', this.path(), {
      body: {
        ...lease,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds,
          acquireTime: taking ? microTime(now) : spec.acquireTime,
          renewTime: microTime(now),
          leaseTransitions: (spec.leaseTransitions ?? 0) + (taking ? 1 : 0),
        },
      },
    });
    this.lastRenew = Date.now();
    if (!this.stopped) this.setLeading(true);
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.options.log.info(
      { identity: this.options.identity, leading },
      leading ? 'became leader' : 'lost leadership',
    );
    if (leading) this.options.onStartedLeading();
    else this.options.onStoppedLeading();
  }
}
