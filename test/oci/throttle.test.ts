import type { InjectOptions } from 'light-my-request';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

/** The AuthService's password rate limit, as the registry's own endpoints must report it. */
describe('password guessing on registry endpoints', () => {
  let server: TestServer;
  const inject = (options: InjectOptions) => server.wharf.app.inject(options);

  beforeAll(async () => {
    // Two failures of one account from one address, then that address is refused for it.
    server = await startOci(
      { auth: { rateLimit: { perAccountAndAddress: 2, perAddress: 100 } } },
      { listen: false },
    );
    await createUser(server, 'carol', 'carol-password');
    await createUser(server, 'dave', 'dave-password');
  });
  afterAll(async () => server?.stop());

  const tokenGet = (user: string, password: string) =>
    inject({
      method: 'GET',
      url: '/v2/auth?service=wharf&scope=repository:carol/app:pull',
      headers: { authorization: basic(user, password) },
    });

  it('answers the Docker token endpoint (GET and POST) with 429, Retry-After and a JSON error', async () => {
    expect((await tokenGet('carol', 'wrong-1')).statusCode).toBe(401);
    expect((await tokenGet('carol', 'wrong-2')).statusCode).toBe(401);
    // Throttled now from this address, even with the right password.
    const refused = await tokenGet('carol', 'carol-password');
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.json().errors[0].code).toBe('TOOMANYREQUESTS');

    const form = await inject({
      method: 'POST',
      url: '/v2/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=password&service=wharf&username=carol&password=carol-password',
    });
    expect(form.statusCode).toBe(429);
    expect(Number(form.headers['retry-after'])).toBeGreaterThan(0);
    expect(form.json().errors[0].code).toBe('TOOMANYREQUESTS');
  });

  it('answers API v1 signin with 429, Retry-After and its own error format', async () => {
    const csrfResponse = await inject({ method: 'GET', url: '/csrf_token' });
    const cookie = String(csrfResponse.headers['set-cookie']).split(';')[0] as string;
    const headers = { cookie, 'x-csrf-token': csrfResponse.json().csrf_token };
    const signin = (password: string) =>
      inject({ method: 'POST', url: '/api/v1/signin', headers, payload: { username: 'dave', password } });
    expect((await signin('wrong-1')).statusCode).toBe(403);
    expect((await signin('wrong-2')).statusCode).toBe(403);
    const refused = await signin('dave-password');
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.json()).toMatchObject({ status: 429, error_type: 'too_many_requests' });
  });
});
