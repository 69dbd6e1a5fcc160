/**
 * Wires the operator together: leader election decides whether this replica works; the leader runs
 * the informers and one controller per kind; every replica serves /healthz, /readyz and /metrics.
 */
import { createServer, type Server } from 'node:http';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient } from './kube/client.ts';
import type { Informer } from './kube/informer.ts';
import { LeaderElector, type LeaseSettings } from './kube/leader.ts';
import { authServiceController } from './reconcile/auth-service.ts';
import { type Caches, createCaches } from './reconcile/caches.ts';
import type { ReconcileContext } from './reconcile/context.ts';
import { FIELD_MANAGER } from './reconcile/names.ts';
import { openIdProviderController } from './reconcile/openid-provider.ts';
import { registryController } from './reconcile/registry.ts';
import { S3Clients } from './reconcile/s3-clients.ts';
import { type ControllerDefinition, resyncKeys, wireController } from './runtime/builder.ts';
import { Controller } from './runtime/controller.ts';
import { EventRecorder } from './runtime/events.ts';
import { createMetrics } from './runtime/metrics.ts';

/** Every controller the operator runs, each declaring its own watches beside its reconciler. */
const CONTROLLERS: ControllerDefinition<Caches, ReconcileContext>[] = [
  openIdProviderController,
  authServiceController,
  registryController,
];

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  /** Only this namespace; all namespaces when undefined. */
  watchNamespace?: string | undefined;
  defaultImage: string;
  resyncSeconds: number;
  externalRecheckSeconds: number;
  host: string;
  port: number;
  /** The Lease settings; the manager supplies the client, the logger and the callbacks. */
  leaderElection?: LeaseSettings;
}

/** The running controllers and caches while this replica leads. */
interface Session {
  context: ReconcileContext;
  controllers: Controller[];
  informers: Informer<KubernetesObject>[];
  resync: NodeJS.Timeout;
  resyncAll: () => void;
  synced: boolean;
}

export class Manager {
  readonly metrics = createMetrics();
  private readonly options: ManagerOptions;
  private readonly elector: LeaderElector | undefined;
  private server: Server | undefined;
  private session: Session | undefined;
  private stopping = false;
  /** Full resyncs so far (periodic or asked for): tests tell a watch-driven repair from a resync. */
  resyncCount = 0;

  constructor(options: ManagerOptions) {
    this.options = options;
    options.client.observe((verb, _path, status) =>
      this.metrics.apiRequests.inc({ verb, code: String(status) }),
    );
    if (options.leaderElection) {
      this.elector = new LeaderElector({
        ...options.leaderElection,
        client: options.client,
        log: options.log,
        onStartedLeading: () => this.lead(),
        onStoppedLeading: () => void this.standDown(),
      });
    }
  }

  get isLeader(): boolean {
    return this.session !== undefined;
  }

  get port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.serveHttp(request.url ?? '/', response));
    await new Promise<void>((resolve) => this.server!.listen(this.options.port, this.options.host, resolve));
    if (this.elector) this.elector.start();
    else this.lead();
  }

  private async serveHttp(url: string, response: import('node:http').ServerResponse): Promise<void> {
    const path = url.split('?')[0];
    if (path === '/healthz')
      return void response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readyz') {
      // A standby replica is ready (it is waiting for the Lease); a leader once its caches are filled.
      const ready = !this.stopping && (!this.session || this.session.synced);
      return void response
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ok\n' : 'not ready\n');
    }
    if (path === '/metrics') {
      const body = await this.metrics.registry.metrics();
      return void response.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
    }
    response.writeHead(404).end();
  }

  private lead(): void {
    if (this.session || this.stopping) return;
    const { client, log, watchNamespace } = this.options;
    this.metrics.leader.set(1);
    const { caches, cache } = createCaches(client, watchNamespace, (error) =>
      log.warn({ err: (error as Error).message }, 'watch failed; relisting'),
    );
    const context: ReconcileContext = {
      client,
      cache,
      caches,
      log,
      events: new EventRecorder(client, FIELD_MANAGER, (error) =>
        log.warn({ err: error }, 'could not record an event'),
      ),
      defaultImage: this.options.defaultImage,
      externalRecheckMs: this.options.externalRecheckSeconds * 1000,
      s3: new S3Clients({ recheckMs: this.options.externalRecheckSeconds * 1000 }),
      fetch: globalThis.fetch,
    };
    const controllers = CONTROLLERS.map((definition) => {
      const controller = new Controller({
        kind: definition.kind,
        workers: definition.maxConcurrentReconciles,
        reconcile: (key) => definition.reconcile(context, key),
        metrics: this.metrics,
        log,
      });
      wireController(definition, caches, (key) => controller.enqueue(key));
      return controller;
    });
    const informers = Object.values(caches) as Informer<KubernetesObject>[];
    const resyncAll = () => {
      this.resyncCount++;
      for (const [index, definition] of CONTROLLERS.entries())
        for (const key of resyncKeys(definition, caches)) controllers[index]!.enqueue(key);
    };
    const session: Session = {
      context,
      controllers,
      informers,
      synced: false,
      resyncAll,
      // Level-based safety net: every resource is looked at again now and then.
      resync: setInterval(resyncAll, this.options.resyncSeconds * 1000),
    };
    this.session = session;
    for (const informer of informers) informer.start();
    void Promise.all(informers.map((informer) => informer.waitForSync())).then(() => {
      if (this.session !== session) return;
      session.synced = true;
      for (const controller of controllers) controller.start();
      log.info('caches synced; controllers started');
    });
  }

  /** Queues every resource now, as the periodic resync does. */
  async resyncNow(): Promise<void> {
    this.session?.resyncAll();
  }

  private async standDown(): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    this.metrics.leader.set(0);
    clearInterval(session.resync);
    for (const cache of session.informers) cache.stop();
    await Promise.all(session.controllers.map((controller) => controller.stop()));
    session.context.s3.destroy();
    // What the last reconciles recorded still reaches the apiserver.
    await session.context.events.flush();
  }

  /** Graceful shutdown: finish reconciles in progress, release the Lease, close the HTTP server. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.standDown();
    await this.elector?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
