/**
 * Wires the operator together: leader election decides whether this replica works; the leader runs
 * the informers and one controller per kind; every replica serves /healthz, /readyz and /metrics.
 */
import { createServer, type Server } from 'node:http';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AuthService, OpenIdProvider, Registry } from './api/types.ts';
import { type KubeClient, resourcePath } from './kube/client.ts';
import { Informer, keyOf } from './kube/informer.ts';
import { LeaderElector, type LeaseSettings } from './kube/leader.ts';
import { reconcileAuthService } from './reconcile/auth-service.ts';
import type { ReconcileContext } from './reconcile/context.ts';
import { FIELD_MANAGER } from './reconcile/names.ts';
import { reconcileOpenIdProvider } from './reconcile/openid-provider.ts';
import { reconcileRegistry } from './reconcile/registry.ts';
import { Controller } from './runtime/controller.ts';
import { EventRecorder } from './runtime/events.ts';
import { createMetrics } from './runtime/metrics.ts';

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

type Kind = 'OpenIdProvider' | 'AuthService' | 'Registry';

/** The running controllers and caches while this replica leads. */
interface Session {
  context: ReconcileContext;
  controllers: Record<Kind, Controller>;
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
    const onError = (error: unknown) =>
      log.warn({ err: (error as Error).message }, 'watch failed; relisting');
    const informer = <T extends KubernetesObject>(apiVersion: string, kind: string, labelSelector?: string) =>
      new Informer<T>(client, resourcePath(apiVersion, kind, watchNamespace), {
        onError,
        ...(labelSelector ? { labelSelector } : {}),
      });
    const caches = {
      providers: informer<OpenIdProvider>('wharf.dev/v1alpha1', 'OpenIdProvider'),
      authServices: informer<AuthService>('wharf.dev/v1alpha1', 'AuthService'),
      registries: informer<Registry>('wharf.dev/v1alpha1', 'Registry'),
      deployments: informer<KubernetesObject>(
        'apps/v1',
        'Deployment',
        `app.kubernetes.io/managed-by=${FIELD_MANAGER}`,
      ),
    };
    const controllers = {} as Record<Kind, Controller>;
    const context: ReconcileContext = {
      client,
      log,
      caches,
      events: new EventRecorder(client, FIELD_MANAGER, (error) =>
        log.warn({ err: error }, 'could not record an event'),
      ),
      defaultImage: this.options.defaultImage,
      externalRecheckMs: this.options.externalRecheckSeconds * 1000,
      fetch: globalThis.fetch,
      enqueue: (kind, key) => controllers[kind].enqueue(key),
    };
    const reconcilers: Record<Kind, (key: string) => Promise<{ requeueAfterMs?: number }>> = {
      OpenIdProvider: (key) => reconcileOpenIdProvider(context, key),
      AuthService: (key) => reconcileAuthService(context, key),
      Registry: (key) => reconcileRegistry(context, key),
    };
    for (const kind of Object.keys(reconcilers) as Kind[]) {
      controllers[kind] = new Controller({ kind, reconcile: reconcilers[kind], metrics: this.metrics, log });
    }
    // Each resource queues itself, and the resources whose status depends on it.
    caches.providers.on((_event, provider) => {
      controllers.OpenIdProvider.enqueue(keyOf(provider));
      for (const auth of caches.authServices.list()) {
        if (
          auth.metadata.namespace === provider.metadata.namespace &&
          auth.spec.openIdProviders.some((ref) => ref.name === provider.metadata.name)
        )
          controllers.AuthService.enqueue(keyOf(auth));
      }
    });
    caches.authServices.on((_event, auth) => {
      controllers.AuthService.enqueue(keyOf(auth));
      for (const registry of caches.registries.list()) {
        if (
          registry.metadata.namespace === auth.metadata.namespace &&
          registry.spec.authServiceRef.name === auth.metadata.name
        )
          controllers.Registry.enqueue(keyOf(registry));
      }
    });
    caches.registries.on((_event, registry) => {
      controllers.Registry.enqueue(keyOf(registry));
      controllers.AuthService.enqueue(`${registry.metadata.namespace}/${registry.spec.authServiceRef.name}`);
    });
    caches.deployments.on((_event, deployment) => {
      const owner = deployment.metadata?.ownerReferences?.find((ref) => ref.controller);
      if (owner && (owner.kind === 'AuthService' || owner.kind === 'Registry'))
        controllers[owner.kind].enqueue(`${deployment.metadata?.namespace}/${owner.name}`);
    });
    const informers = Object.values(caches) as Informer<KubernetesObject>[];
    const resyncAll = () => {
      for (const provider of caches.providers.list()) controllers.OpenIdProvider.enqueue(keyOf(provider));
      for (const auth of caches.authServices.list()) controllers.AuthService.enqueue(keyOf(auth));
      for (const registry of caches.registries.list()) controllers.Registry.enqueue(keyOf(registry));
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
    for (const cache of informers) cache.start();
    void Promise.all(informers.map((cache) => cache.waitForSync())).then(() => {
      if (this.session !== session) return;
      session.synced = true;
      for (const controller of Object.values(controllers)) controller.start();
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
    await Promise.all(Object.values(session.controllers).map((controller) => controller.stop()));
  }

  /** Graceful shutdown: finish reconciles in progress, release the Lease, close the HTTP server. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.standDown();
    await this.elector?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
