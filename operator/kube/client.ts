/**
 * A small REST client over @kubernetes/client-node's KubeConfig (authentication, TLS, in-cluster
 * config) and undici. One place for every call the operator makes, so each one is counted (the
 * `api requests` metric, and the zero-writes-on-resync proof) and errors carry the HTTP status.
 */
import { KubeConfig, type KubernetesObject, RequestContext } from '@kubernetes/client-node';
import { fetch } from 'undici';

export class KubeError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeError';
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (error: unknown) => error instanceof KubeError && error.status === 404;
export const isConflict = (error: unknown) => error instanceof KubeError && error.status === 409;

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
export const WRITE_VERBS: ReadonlySet<Verb> = new Set(['create', 'update', 'patch', 'delete']);

/** Where each kind the operator touches lives in the API (no discovery round trips needed). */
const RESOURCES: Record<string, { prefix: string; plural: string }> = {
  'v1/ConfigMap': { prefix: '/api/v1', plural: 'configmaps' },
  'v1/Secret': { prefix: '/api/v1', plural: 'secrets' },
  'v1/PersistentVolumeClaim': { prefix: '/api/v1', plural: 'persistentvolumeclaims' },
  'v1/Service': { prefix: '/api/v1', plural: 'services' },
  'v1/Event': { prefix: '/api/v1', plural: 'events' },
  'v1/ServiceAccount': { prefix: '/api/v1', plural: 'serviceaccounts' },
  'policy/v1/PodDisruptionBudget': { prefix: '/apis/policy/v1', plural: 'poddisruptionbudgets' },
  'apps/v1/Deployment': { prefix: '/apis/apps/v1', plural: 'deployments' },
  'networking.k8s.io/v1/Ingress': { prefix: '/apis/networking.k8s.io/v1', plural: 'ingresses' },
  'coordination.k8s.io/v1/Lease': { prefix: '/apis/coordination.k8s.io/v1', plural: 'leases' },
  'wharf.dev/v1alpha1/OpenIdProvider': { prefix: '/apis/wharf.dev/v1alpha1', plural: 'openidproviders' },
  'wharf.dev/v1alpha1/AuthService': { prefix: '/apis/wharf.dev/v1alpha1', plural: 'authservices' },
  'wharf.dev/v1alpha1/Registry': { prefix: '/apis/wharf.dev/v1alpha1', plural: 'registries' },
};

/** `/apis/apps/v1/namespaces/ns/deployments[/name]`; without a namespace, the cluster-wide collection. */
export function resourcePath(apiVersion: string, kind: string, namespace?: string, name?: string): string {
  const resource = RESOURCES[`${apiVersion}/${kind}`];
  if (!resource) throw new Error(`unknown resource ${apiVersion}/${kind}`);
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const item = name ? `/${encodeURIComponent(name)}` : '';
  return `${resource.prefix}${ns}/${resource.plural}${item}`;
}

export function objectPath(object: KubernetesObject): string {
  return resourcePath(object.apiVersion!, object.kind!, object.metadata?.namespace, object.metadata?.name);
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

export type RequestObserver = (verb: Verb, path: string, status: number) => void;

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly fieldManager: string;
  private readonly server: string;
  private readonly observers: RequestObserver[] = [];
  /**
   * One connection pool for every call, as client-go keeps one transport per config: client-node
   * hands out a new agent with each authentication, and using it would open (and TLS-handshake) a
   * new connection for every request, which on a busy apiserver costs more than the request.
   */
  private dispatcher: unknown;

  constructor(kubeConfig: KubeConfig, fieldManager = 'wharf-operator') {
    this.kubeConfig = kubeConfig;
    this.fieldManager = fieldManager;
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/$/, '');
  }

  static fromDefault(): KubeClient {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
    return new KubeClient(kubeConfig);
  }

  /** Called after every request with its verb and status (0 when the connection failed). */
  observe(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  private notify(verb: Verb, path: string, status: number): void {
    for (const observer of this.observers) observer(verb, path, status);
  }

  /**
   * The request's headers, authenticated afresh each time (a projected service-account token is
   * re-read as the kubelet rotates it), and the shared connection pool, made on the first call.
   */
  private async authenticate(
    url: URL,
    method: string,
  ): Promise<{ headers: Record<string, string>; dispatcher: unknown }> {
    const context = new RequestContext(url.toString(), method as never);
    await this.kubeConfig.applySecurityAuthentication(context);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [key, value] of Object.entries(context.getHeaders())) headers[key] = String(value);
    this.dispatcher ??= context.getDispatcher();
    return { headers, dispatcher: this.dispatcher };
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const verb = verbOf(method, path);
    let response: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    for (let attempt = 1; ; attempt++) {
      const { headers, dispatcher } = await this.authenticate(url, method);
      if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
      try {
        response = await fetch(url, {
          method,
          headers,
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          dispatcher: dispatcher as never,
          signal: options.signal ?? AbortSignal.timeout(30_000),
        });
      } catch (error) {
        this.notify(verb, path, 0);
        throw error;
      }
      this.notify(verb, path, response.status);
      text = await response.text();
      const wait = retryAfterMs(response, attempt);
      if (wait === undefined) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      throw new KubeError(
        response.status,
        String(parsed.reason ?? response.statusText),
        `${method} ${path}: ${response.status} ${String(parsed.message ?? text).slice(0, 500)}`,
      );
    }
    return parsed as T;
  }

  /** The object, or undefined when it does not exist. */
  async get<T extends KubernetesObject>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  list<T extends KubernetesObject>(path: string, query: RequestOptions['query'] = {}) {
    return this.request<{ metadata: { resourceVersion: string }; items: T[] }>('GET', path, { query });
  }

  create<T extends KubernetesObject>(object: T): Promise<T> {
    const { apiVersion, kind, metadata } = object;
    return this.request<T>('POST', resourcePath(apiVersion!, kind!, metadata?.namespace), {
      body: object,
      query: { fieldManager: this.fieldManager },
    });
  }

  /** Server-side apply with this operator's field manager, taking over conflicting fields. */
  apply<T extends KubernetesObject>(object: T, subresource?: 'status'): Promise<T> {
    const path = objectPath(object) + (subresource ? `/${subresource}` : '');
    return this.request<T>('PATCH', path, {
      body: object,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: this.fieldManager, force: true },
    });
  }

  mergePatch<T extends KubernetesObject>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, {
      body: patch,
      contentType: 'application/merge-patch+json',
      query: { fieldManager: this.fieldManager },
    });
  }

  async delete(path: string): Promise<void> {
    try {
      await this.request('DELETE', path);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /**
   * A watch stream: `onEvent` for each event, `done` once when it ends (with the error if any). The
   * server closes it after `timeoutSeconds`; a stream silent well beyond that is a dead connection
   * and is given up. (client-node's Watch gives up after 30 s of silence, and an idle watch sees
   * no event nor bookmark for longer than that, so each idle informer relisted every 30 s.)
   */
  async watch(
    path: string,
    query: Record<string, string | number | boolean>,
    onEvent: (type: string, object: KubernetesObject) => void,
    done: (error?: unknown) => void,
  ): Promise<AbortController> {
    this.notify('watch', path, 200);
    const url = new URL(this.server + path);
    url.searchParams.set('watch', 'true');
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, String(value));
    const { headers, dispatcher } = await this.authenticate(url, 'GET');

    const controller = new AbortController();
    const idleMs = (Number(query.timeoutSeconds ?? 300) + 30) * 1000;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new Error(`watch ${path}: silent for ${idleMs} ms`)), idleMs);
      timer.unref();
    };
    let ended = false;
    const finish = (error?: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      controller.abort();
      done(error);
    };
    arm();
    const stream = async () => {
      const response = await fetch(url, {
        headers,
        dispatcher: dispatcher as never,
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        const text = await response.text();
        throw new KubeError(
          response.status,
          response.statusText,
          `watch ${path}: ${response.status} ${text.slice(0, 500)}`,
        );
      }
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body) {
        arm();
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line.trim()) continue;
          const event = JSON.parse(line) as { type: string; object: KubernetesObject };
          onEvent(event.type, event.object);
        }
      }
    };
    stream().then(() => finish(), finish);
    return controller;
  }
}

/** Attempts at a request the apiserver turns away with 429 before its error is given up. */
const MAX_ATTEMPTS = 10;

/**
 * How long to wait before sending again: as client-go does, a 429 (Too Many Requests: the
 * apiserver's priority and fairness, or a custom resource's storage still initializing) with a
 * Retry-After header was not processed and is sent again after that many seconds (at most 10).
 */
function retryAfterMs(response: { status: number; headers: Headers }, attempt: number): number | undefined {
  if (response.status !== 429 || attempt >= MAX_ATTEMPTS) return undefined;
  const seconds = Number(response.headers.get('retry-after'));
  if (!Number.isFinite(seconds) || seconds < 0) return undefined;
  return Math.min(seconds, 10) * 1000;
}

function verbOf(method: string, path: string): Verb {
  switch (method) {
    case 'GET': {
      // A collection path ends in the plural; an item path has one more segment after it.
      const segments = path.split('?')[0]!.split('/').filter(Boolean);
      const core = segments[0] === 'api';
      const afterVersion = segments.slice(core ? 2 : 3);
      const namespaced = afterVersion[0] === 'namespaces' && afterVersion.length > 2;
      const rest = namespaced ? afterVersion.slice(2) : afterVersion;
      return rest.length >= 2 ? 'get' : 'list';
    }
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return 'get';
  }
}
