import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_PASSWORD } from '../support/auth-server.ts';
import { chunk, openRaw, type RawResponse, requestHead, response } from '../support/raw-http.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const SERVICE = basic('tester', SERVICE_PASSWORD);
const CREDENTIAL_LIMIT = 16 * 1024;

/**
 * Each surface's body limits over real sockets: a request announcing a body over its route's limit
 * is refused from its Content-Length alone (the body is never sent here), in the surface's own
 * error format, and the connection is closed so nothing more of the body is read.
 */
describe('per-route body limits', () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startServer({
      logLevel: 'warn',
      auth: {
        signup: 'open',
        services: [{ name: 'tester', password: SERVICE_PASSWORD, permissions: ['*'] }],
      },
      registry: { cargo: { maxCrateBytes: 64 * 1024 }, oci: { maxManifestBytes: 4096 } },
    });
    const created = await fetch(`${server.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    token = ((await created.json()) as { token: string }).token;
  });
  afterAll(() => server?.stop());

  /** Sends only the head of a request announcing `length` bytes, and reads the answer. */
  async function announce(
    method: string,
    target: string,
    length: number,
    headers: Record<string, string> = {},
  ): Promise<RawResponse & { closed: boolean }> {
    const connection = await openRaw(server.url);
    connection.socket.write(
      requestHead(method, target, {
        'content-type': 'application/json',
        ...headers,
        'content-length': length,
      }),
    );
    const answer = await response(connection);
    const closed = await Promise.race([connection.closed.then(() => true), sleep(2000).then(() => false)]);
    connection.socket.destroy();
    return { ...answer, closed };
  }

  const ktraDetail = (answer: RawResponse) =>
    (JSON.parse(answer.body) as { errors: { detail: string }[] }).errors;

  it('credential endpoints take 16 KiB: Ktra login, sign-up and password change', async () => {
    for (const target of [
      '/ktra/api/v1/login/alice',
      '/ktra/api/v1/new_user/mallory',
      '/ktra/api/v1/change_password/alice',
    ]) {
      const answer = await announce('POST', target, CREDENTIAL_LIMIT + 1);
      expect(answer.status, target).toBe(413);
      expect(ktraDetail(answer)[0]?.detail, target).toMatch(/too large/i);
      expect(answer.headers.connection).toBe('close');
      expect(answer.closed).toBe(true);
    }
    // Just under the limit the body is read and judged: a wrong password, not a size problem.
    const password = 'x'.repeat(CREDENTIAL_LIMIT - 100);
    const login = await fetch(`${server.url}/ktra/api/v1/login/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password }),
    });
    expect(login.status).toBe(403);
  });

  it("wharf's own API and RestAuth's password checks take 16 KiB, in their own formats", async () => {
    const tokens = await announce('POST', '/auth/api/v1/tokens', CREDENTIAL_LIMIT + 1, {
      authorization: token,
    });
    expect(tokens.status).toBe(413);
    expect(ktraDetail(tokens)[0]?.detail).toMatch(/too large/i);

    for (const [method, target] of [
      ['POST', '/restauth/verify'],
      ['POST', '/restauth/users/alice/'],
      ['PUT', '/restauth/users/alice/'],
    ] as const) {
      const answer = await announce(method, target, CREDENTIAL_LIMIT + 1, { authorization: SERVICE });
      expect(answer.status, target).toBe(413);
      expect(JSON.parse(answer.body), target).toEqual({ error: expect.stringMatching(/too large/i) });
    }
  });

  it('RestAuth property writes take the general JSON limit (bodyLimitBytes), not the credential one', async () => {
    const properties = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`p${i}`, 'v'.repeat(1000)]));
    const fits = await fetch(`${server.url}/restauth/users/alice/props/`, {
      method: 'PUT',
      headers: { authorization: SERVICE, 'content-type': 'application/json' },
      body: JSON.stringify(properties),
    });
    expect(fits.status).toBe(200);
    const answer = await announce('PUT', '/restauth/users/alice/props/', 256 * 1024 + 1, {
      authorization: SERVICE,
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ error: expect.stringMatching(/too large/i) });
  });

  it('API v1 sign-in takes 16 KiB and answers in its own error format (was a 500)', async () => {
    const answer = await announce('POST', '/api/v1/signin', CREDENTIAL_LIMIT + 1);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 413, error_type: 'invalid_request' });
  });

  it('the Docker token endpoint takes 16 KiB of form, refused in OAuth form', async () => {
    const answer = await announce('POST', '/v2/auth', CREDENTIAL_LIMIT + 1, {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'invalid_request' });
  });

  it('cargo: only publish takes a .crate; other routes the JSON limit, refused in cargo format', async () => {
    const owners = await announce('PUT', '/api/v1/crates/anything/owners', 256 * 1024 + 1, {
      authorization: token,
      'content-type': 'application/octet-stream',
    });
    expect(owners.status).toBe(413);
    expect(ktraDetail(owners)[0]?.detail).toMatch(/request body is larger than this registry's limit/);

    // maxCrateBytes (64 KiB) + 4 MiB of metadata: a bigger publish is refused before it is read.
    const publish = await announce('PUT', '/api/v1/crates/new', 64 * 1024 + 4 * 1024 * 1024 + 1, {
      authorization: token,
      'content-type': 'application/octet-stream',
    });
    expect(publish.status).toBe(413);
    expect(ktraDetail(publish)[0]?.detail).toMatch(/larger than this registry's limit of 0\.1 MiB/);
    expect(publish.closed).toBe(true);
  });

  it('OCI manifests: refused from Content-Length over maxManifestBytes with SIZE_INVALID', async () => {
    const grant = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    const bearer = `Bearer ${((await grant.json()) as { token: string }).token}`;
    const answer = await announce('PUT', '/v2/alice/app/manifests/latest', 4097, {
      authorization: bearer,
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).errors[0]).toMatchObject({ code: 'SIZE_INVALID' });
    expect(answer.closed).toBe(true);
  });

  it('a chunked body with no Content-Length is refused as soon as it passes the limit, without waiting for its end', async () => {
    const grant = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    const bearer = `Bearer ${((await grant.json()) as { token: string }).token}`;
    for (const [method, target, headers, limit] of [
      ['POST', '/ktra/api/v1/login/alice', { 'content-type': 'application/json' }, CREDENTIAL_LIMIT],
      [
        'PUT',
        '/v2/alice/app/manifests/latest',
        { authorization: bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        4096,
      ],
    ] as const) {
      const connection = await openRaw(server.url);
      connection.socket.write(requestHead(method, target, { ...headers, 'transfer-encoding': 'chunked' }));
      // Past the limit by one 1 KiB chunk, then the body goes on (never a terminating chunk).
      for (let sent = 0; sent <= limit; sent += 1024) connection.socket.write(chunk('a'.repeat(1024)));
      const answer = await response(connection);
      expect(answer.status, target).toBe(413);
      expect(answer.headers.connection, target).toBe('close');
      await connection.closed;
    }
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
