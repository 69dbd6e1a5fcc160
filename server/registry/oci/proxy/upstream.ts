import type { Dispatcher } from 'undici';
import { SingleFlight } from '../../single-flight.ts';
import { MANIFEST_TYPES } from '../storage/manifests.ts';

/** Every manifest type wharf stores, as a Docker client sends it (without it Docker Hub answers schema 1). */
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES].join(', ');

/** Tokens are dropped this long before they expire, so none expires on its way upstream. */
const TOKEN_MARGIN_MS = 10_000;
/** Docker's token spec: without `expires_in` a token lives 60 seconds. */
const DEFAULT_TOKEN_SECONDS = 60;

/** The upstream could not be asked (unreachable, timed out) or answered something unusable. */
export class UpstreamError extends Error {
  /** The upstream's HTTP status, or null when there was no answer. */
  readonly status: number | null;
  readonly timeout: boolean;
  constructor(message: string, status: number | null, { timeout = false } = {}) {
    super(message);
    this.name = 'UpstreamError';
    this.status = status;
    this.timeout = timeout;
  }
}

export interface UpstreamSettings {
  upstream: string;
  username?: string;
  password?: string;
  timeoutSeconds: number;
}

export interface UpstreamResponse {
  status: number;
  headers: Dispatcher.ResponseData['headers'];
  body: Dispatcher.ResponseData['body'];
}

/** Each upstream answer, for the metrics (`status` is the HTTP status, `error` or `timeout`). */
export type UpstreamObserver = (status: string) => void;

/**
 * One upstream registry, spoken to as a Docker client does: anonymous first, then the flow its
 * `WWW-Authenticate` asks for — Bearer (Docker's token protocol: a token from the realm for the
 * repository's pull scope, with the configured credentials as Basic auth, reused until it expires)
 * or Basic. Redirects (to blob storage) are followed; undici drops Authorization on another origin.
 */
export class UpstreamRegistry {
  private readonly base: string;
  private readonly settings: UpstreamSettings;
  /**
   * Made on the first request: undici (a second copy beside Node's own fetch) adds about 25 MB to a
   * process, which a registry without proxies should not carry.
   */
  private dispatcher: Promise<Dispatcher> | null = null;
  private readonly timeoutMillis: number;
  private readonly observe: UpstreamObserver;
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  private readonly tokenFlights = new SingleFlight<string>();
  /** Set once the upstream asked for Basic auth: then every request carries it. */
  private basic = false;

  constructor(settings: UpstreamSettings, observe: UpstreamObserver = () => {}) {
    this.settings = settings;
    this.base = settings.upstream.replace(/\/+$/, '');
    this.observe = observe;
    this.timeoutMillis = settings.timeoutSeconds * 1000;
  }

  private connection(): Promise<Dispatcher> {
    this.dispatcher ??= import('undici').then(({ Agent, interceptors }) =>
      new Agent({
        headersTimeout: this.timeoutMillis,
        bodyTimeout: this.timeoutMillis,
        connectTimeout: this.timeoutMillis,
      }).compose(interceptors.redirect({ maxRedirections: 5 })),
    );
    return this.dispatcher;
  }

  /** `GET`/`HEAD` of `/v2/<repository>/<path>`; any status is returned, failures to answer throw. */
  async fetch(
    method: 'GET' | 'HEAD',
    repository: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<UpstreamResponse> {
    const url = `${this.base}/v2/${repository}/${path}`;
    const scope = `repository:${repository}:pull`;
    let response = await this.send(method, url, { ...headers, ...this.authorization(scope) });
    if (response.status === 401) {
      const challenge = parseChallenge(header(response.headers, 'www-authenticate'));
      await response.body.dump().catch(() => {});
      if (!challenge) return response;
      if (challenge.scheme === 'basic') {
        if (!this.settings.username)
          throw new UpstreamError('the upstream asks for Basic auth and no credentials are configured', 401);
        this.basic = true;
      } else {
        this.tokens.delete(scope);
        await this.token(scope, challenge.params);
      }
      response = await this.send(method, url, { ...headers, ...this.authorization(scope) });
    }
    return response;
  }

  async close(): Promise<void> {
    if (this.dispatcher) await (await this.dispatcher).close();
  }

  private authorization(scope: string): Record<string, string> {
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > Date.now()) return { authorization: `Bearer ${cached.token}` };
    if (this.basic && this.settings.username) return { authorization: this.basicCredentials() };
    return {};
  }

  private basicCredentials(): string {
    const { username, password } = this.settings;
    return `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
  }

  /** A token for `scope` from the challenge's realm, shared by the requests that need it at once. */
  private token(scope: string, params: Record<string, string>): Promise<string> {
    return this.tokenFlights.run(scope, async () => {
      const realm = params.realm;
      if (!realm) throw new UpstreamError('the upstream asked for a token without naming its realm', 401);
      const url = new URL(realm);
      if (params.service) url.searchParams.set('service', params.service);
      url.searchParams.set('scope', scope);
      const headers: Record<string, string> = this.settings.username
        ? { authorization: this.basicCredentials() }
        : {};
      const response = await this.send('GET', url.toString(), headers);
      if (response.status !== 200) {
        await response.body.dump().catch(() => {});
        throw new UpstreamError(`the upstream token endpoint answered ${response.status}`, response.status);
      }
      const document = (await response.body.json().catch(() => null)) as {
        token?: unknown;
        access_token?: unknown;
        expires_in?: unknown;
      } | null;
      const token = document?.token ?? document?.access_token;
      if (typeof token !== 'string' || token === '')
        throw new UpstreamError('the upstream token endpoint answered without a token', 502);
      const seconds =
        typeof document?.expires_in === 'number' && document.expires_in > 0
          ? document.expires_in
          : DEFAULT_TOKEN_SECONDS;
      this.tokens.set(scope, { token, expiresAt: Date.now() + seconds * 1000 - TOKEN_MARGIN_MS });
      if (this.tokens.size > 10_000) this.tokens.clear();
      return token;
    });
  }

  private async send(
    method: 'GET' | 'HEAD',
    url: string,
    headers: Record<string, string>,
  ): Promise<UpstreamResponse> {
    try {
      const dispatcher = await this.connection();
      const response = await dispatcher.request({
        origin: new URL(url).origin,
        path: `${new URL(url).pathname}${new URL(url).search}`,
        method,
        headers: { 'user-agent': 'wharf-proxy', ...headers },
      });
      this.observe(String(response.statusCode));
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      const timeout = code.includes('TIMEOUT');
      this.observe(timeout ? 'timeout' : 'error');
      throw new UpstreamError(
        `the upstream registry ${this.base} did not answer: ${(error as Error).message}`,
        null,
        { timeout },
      );
    }
  }
}

/** A response header as one string (undici gives arrays for repeated headers). */
export function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`; null for anything else. */
export function parseChallenge(
  value: string | undefined,
): { scheme: 'bearer' | 'basic'; params: Record<string, string> } | null {
  if (!value) return null;
  const match = /^\s*(\w+)\s*(.*)$/.exec(value);
  const scheme = match?.[1]?.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return null;
  const params: Record<string, string> = {};
  for (const param of (match?.[2] ?? '').matchAll(/([\w-]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g))
    params[(param[1] as string).toLowerCase()] = param[2] ?? param[3] ?? '';
  return { scheme, params };
}
