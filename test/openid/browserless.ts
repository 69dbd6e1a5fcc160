/**
 * A minimal browser for the HTTP tests: a cookie jar (cookies keyed by host name, as browsers do,
 * whatever the port), manual redirects, and form submission on the provider's pages.
 */
export class CookieJar {
  private readonly cookies = new Map<string, Map<string, string>>();

  header(url: URL): string {
    return [...(this.cookies.get(url.hostname) ?? new Map()).entries()]
      .map(([k, v]) => `${k}=${v}`)
      .join('; ');
  }

  store(url: URL, response: Response): void {
    const jar = this.cookies.get(url.hostname) ?? new Map<string, string>();
    this.cookies.set(url.hostname, jar);
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
  }

  get(hostname: string, name: string): string | undefined {
    return this.cookies.get(hostname)?.get(name);
  }
}

export interface Visit {
  url: URL;
  response: Response;
  body: string;
}

export class Browserless {
  readonly jar = new CookieJar();
  /** Every URL requested, in order: lets tests check that no token ever appears in a URL. */
  readonly history: string[] = [];
  private readonly accept: string;

  constructor(accept = 'application/json') {
    this.accept = accept;
  }

  async request(
    url: string | URL,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<Visit> {
    const target = new URL(url);
    this.history.push(target.href);
    const headers: Record<string, string> = {
      accept: target.pathname.includes('/interaction/') ? 'text/html' : this.accept,
    };
    const cookie = this.jar.header(target);
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const response = await fetch(target, { method: init.method ?? 'GET', headers, body, redirect: 'manual' });
    this.jar.store(target, response);
    return { url: target, response, body: await response.text() };
  }

  /** Follows redirects from `url` until a page that is not a redirect. */
  async follow(
    url: string | URL,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<Visit> {
    let visit = await this.request(url, init);
    for (let hops = 0; hops < 20 && visit.response.status >= 300 && visit.response.status < 400; hops++) {
      visit = await this.request(new URL(visit.response.headers.get('location')!, visit.url));
    }
    return visit;
  }

  /**
   * Signs in at the provider from `start`: submits the login form as `login`, then the consent
   * form, and stops at the first answer that is neither a provider page nor a redirect.
   * With `stopAtCallback`, returns the callback URL instead of requesting it.
   */
  async signIn(start: string | URL, login: string, { stopAtCallback = false } = {}): Promise<Visit | URL> {
    let visit = await this.request(start);
    for (let step = 0; step < 30; step++) {
      const status = visit.response.status;
      if (status >= 300 && status < 400) {
        const next = new URL(visit.response.headers.get('location')!, visit.url);
        if (
          stopAtCallback &&
          next.pathname.startsWith('/ktra/api/v1/openid/') &&
          next.searchParams.has('state')
        )
          return next;
        visit = await this.request(next);
        continue;
      }
      if (!visit.url.pathname.startsWith('/interaction/')) return visit;
      const action = new URL(
        /<form[^>]*action="([^"]+)"/.exec(visit.body)![1]!.replaceAll('&amp;', '&'),
        visit.url,
      );
      const form: Record<string, string> = visit.body.includes('name="login"')
        ? { prompt: 'login', login, password: 'any-password' }
        : { prompt: 'consent' };
      visit = await this.request(action, { method: 'POST', form });
    }
    throw new Error('sign-in did not finish');
  }
}
