import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLBACK_PATHS } from '../../server/auth/openid/providers.ts';
import { negotiate } from '../../server/auth/restauth/negotiation.ts';
import { basic, call, type RunningServer, startServer } from '../support/auth-server.ts';

/**
 * The two RestAuth revisions side by side on one server, over raw HTTP: what the client library
 * cannot show (415, the bodies and formats of each answer), the reference left as it was, and the
 * API served at the root next to every other route of the auth and registry roles.
 */

const WIKI = basic('wiki', 'wiki-service-password-0123');
const REFERENCE = basic('tester', 'service-password-0123456789');
const FORM = 'application/x-www-form-urlencoded';

async function raw(
  url: string,
  method: string,
  { auth, headers = {}, body }: { auth?: string; headers?: Record<string, string>; body?: string } = {},
) {
  const response = await fetch(url, {
    method,
    headers: { ...(auth ? { authorization: auth } : {}), ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('RestAuth at the root of a host, two revisions side by side', () => {
  let server: RunningServer;
  let base: string;

  beforeAll(async () => {
    server = await startServer({
      roles: ['auth', 'registry'],
      auth: {
        restauth: { pathPrefix: '' },
        services: [
          {
            name: 'wiki',
            password: 'wiki-service-password-0123',
            permissions: ['*'],
            protocol: 'restauth-0.6',
            userNames: 'restauth',
            passwordMinLength: 6,
          },
          { name: 'tester', password: 'service-password-0123456789', permissions: ['*'] },
        ],
      },
    });
    base = server.url;
    const created = await call(`${base}/users/`, 'POST', {
      auth: WIKI,
      json: { user: 'alice', password: 'alice-pass-1' },
    });
    expect(created.status).toBe(201);
  });
  afterAll(async () => server?.close());

  it('answers the same operation in each revision: 204 and 412 for 0.6, 200 and 400 for the reference', async () => {
    const rows: [string, string, string, Record<string, unknown> | undefined, number, number][] = [
      ['user exists', 'GET', '/users/alice/', undefined, 204, 200],
      ['right password', 'POST', '/users/alice/', { password: 'alice-pass-1' }, 204, 200],
      ['wrong password', 'POST', '/users/alice/', { password: 'wrong-pass' }, 404, 404],
      ['unacceptable name', 'POST', '/users/', { user: 'foo/bar', password: 'password1' }, 412, 400],
      ['6-character password', 'PUT', '/users/alice/', { password: 'foobar' }, 204, 400],
      ['create body without user', 'POST', '/users/', { bad: 'request' }, 400, 400],
      ['PUT with an unknown field only', 'PUT', '/users/alice/', { bad: 'request' }, 400, 400],
      ['dry-run create', 'POST', '/test/users/', { user: 'zed', password: 'zed-pass-1' }, 201, 404],
      ['set several properties', 'PUT', '/users/alice/props/', { lang: 'en' }, 204, 200],
      ['unknown user before the body', 'PUT', '/users/nobody/', { password: 'x' }, 404, 404],
    ];
    for (const [label, method, path, json, released, reference] of rows) {
      const asWiki = await call(`${base}${path}`, method, { auth: WIKI, ...(json ? { json } : {}) });
      const asReference = await call(`${base}${path}`, method, {
        auth: REFERENCE,
        ...(json ? { json } : {}),
      });
      expect([label, asWiki.status, asReference.status]).toEqual([label, released, reference]);
    }
    // The dry run changed nothing.
    expect((await call(`${base}/users/zed/`, 'GET', { auth: WIKI })).status).toBe(404);
  });

  it('wraps a property value as RestAuth 0.6 does: ["value"], or str= in a form', async () => {
    await call(`${base}/users/alice/props/`, 'POST', {
      auth: WIKI,
      json: { prop: 'email', value: 'a b@example.org' },
    });
    const json = await raw(`${base}/users/alice/props/email/`, 'GET', { auth: WIKI });
    expect([json.status, json.headers.get('content-type'), json.text]).toEqual([
      200,
      expect.stringMatching(/^application\/json/),
      '["a b@example.org"]',
    ]);
    const form = await raw(`${base}/users/alice/props/email/`, 'GET', {
      auth: WIKI,
      headers: { accept: FORM },
    });
    expect([form.status, form.headers.get('content-type'), form.text]).toEqual([
      200,
      FORM,
      'str=a+b%40example.org',
    ]);
    const list = await raw(`${base}/users/`, 'GET', {
      auth: WIKI,
      headers: { accept: `application/json;q=0.5, ${FORM}` },
    });
    expect(list.text).toBe('list=alice');
    // The reference: a JSON string, whatever the Accept.
    const reference = await raw(`${base}/users/alice/props/email/`, 'GET', {
      auth: REFERENCE,
      headers: { accept: 'wrong/mime' },
    });
    expect([reference.status, reference.text]).toEqual([200, '"a b@example.org"']);
  });

  it('negotiates: 406 for an Accept it cannot write, 415 for a body it cannot read, form bodies read', async () => {
    const notAcceptable = await raw(`${base}/users/`, 'GET', {
      auth: WIKI,
      headers: { accept: 'wrong/mime' },
    });
    expect([notAcceptable.status, notAcceptable.headers.get('content-type')]).toEqual([
      406,
      'text/plain; charset=utf-8',
    ]);
    for (const auth of [WIKI, REFERENCE]) {
      const unsupported = await raw(`${base}/users/`, 'POST', {
        auth,
        headers: { 'content-type': 'wrong/mime' },
        body: '{"user":"frank"}',
      });
      expect(unsupported.status).toBe(415);
    }
    // No Content-Type at all: RestAuth 0.6.4 refuses such a POST with 415 too.
    const untyped = await fetch(`${base}/users/`, {
      method: 'POST',
      headers: { authorization: WIKI },
      body: new Uint8Array(Buffer.from('{"user":"frank"}')),
    });
    expect(untyped.status).toBe(415);
    // The dry runs belong to 0.6: a reference service finds no such resource.
    const dryRun = await call(`${base}/test/groups/`, 'POST', { auth: REFERENCE, json: { group: 'x' } });
    expect([dryRun.status, dryRun.body]).toEqual([404, { error: expect.any(String) }]);
    expect((await call(`${base}/users/frank/`, 'GET', { auth: WIKI })).status).toBe(404);
    const form = await raw(`${base}/users/`, 'POST', {
      auth: WIKI,
      headers: { 'content-type': FORM },
      body: 'user=erin&password=erin-pass-1',
    });
    expect(form.status).toBe(201);
    const malformed = await raw(`${base}/users/`, 'POST', {
      auth: WIKI,
      headers: { 'content-type': 'application/json' },
      body: '{"user":',
    });
    expect([malformed.status, malformed.headers.get('content-type')]).toEqual([
      400,
      'text/plain; charset=utf-8',
    ]);
    const reference = await raw(`${base}/users/`, 'POST', {
      auth: REFERENCE,
      headers: { 'content-type': 'application/json' },
      body: '{"user":',
    });
    expect([reference.status, JSON.parse(reference.text)]).toMatchObject([
      400,
      { error: expect.any(String) },
    ]);
  });

  it('reads Accept with wildcards and qualities', () => {
    const rows: [string | undefined, string | null][] = [
      [undefined, 'json'],
      ['', 'json'],
      ['*/*', 'json'],
      ['application/*', 'json'],
      [FORM, 'form'],
      [`application/json;q=0.1, ${FORM};q=0.9`, 'form'],
      [`${FORM};q=0, */*;q=0.1`, 'json'],
      ['text/html', null],
      ['application/json;q=0', null],
      ['application/pickle', null],
    ];
    expect(rows.map(([accept]) => [accept, negotiate(accept)])).toEqual(rows);
  });

  it('keeps every other route of the auth and registry roles where it was, in its own format', async () => {
    const top = ['/users', '/groups', '/test', '/verify'];
    const restauth = (url: string) => top.some((path) => url === path || url.startsWith(`${path}/`));
    const others = server.wharf.routes.filter((route) => !restauth(route.url));
    // Nothing else lives under RestAuth's paths, OpenID's callbacks included.
    for (const path of ['/me', '/replace_token', ...Object.values(CALLBACK_PATHS)])
      expect(restauth(path)).toBe(false);
    expect(others.map((route) => route.url)).toEqual(
      expect.arrayContaining(['/healthz', '/readyz', '/me', '/v2/*', '/auth/api/v1/tokens']),
    );
    expect((await raw(`${base}/healthz`, 'GET')).status).toBe(200);
    expect((await raw(`${base}/me`, 'GET')).status).toBe(200);
    const v2 = await raw(`${base}/v2/`, 'GET');
    expect([v2.status, v2.headers.get('www-authenticate')]).toEqual([401, expect.stringMatching(/^Bearer /)]);
    const api = await raw(`${base}/auth/api/v1/tokens`, 'GET');
    expect([api.status, JSON.parse(api.text)]).toMatchObject([
      401,
      { errors: [{ detail: expect.any(String) }] },
    ]);
    const ktra = await raw(`${base}/ktra/api/v1/login/alice`, 'POST', {
      headers: { 'content-type': 'application/json' },
      // Set by the wiki's 6-character PUT above.
      body: JSON.stringify({ password: 'foobar' }),
    });
    expect(ktra.status).toBe(200);
    // RestAuth's own paths: its 401 and its 404 format; elsewhere the root's.
    const unauthenticated = await raw(`${base}/users/`, 'GET');
    expect([unauthenticated.status, unauthenticated.headers.get('www-authenticate')]).toEqual([
      401,
      expect.stringMatching(/^Basic /),
    ]);
    expect(JSON.parse((await raw(`${base}/groups/a/b/c/d/e`, 'GET', { auth: WIKI })).text)).toEqual({
      error: expect.any(String),
    });
    expect(JSON.parse((await raw(`${base}/restauth/users/`, 'GET', { auth: WIKI })).text)).toMatchObject({
      errors: [{ detail: expect.any(String) }],
    });
  });
});
