import { afterAll, beforeAll, expect, it } from 'vitest';
import { Browserless, type Visit } from './browserless.ts';
import { type Harness, startHarness } from './harness.ts';

let wharf: Harness;
beforeAll(async () => {
  // All roles, so the registry's API v1 runs beside the AuthService, on two replicas in turn.
  wharf = await startHarness({ settings: { roles: ['auth', 'registry'] } });
});
afterAll(async () => wharf?.close());

it('signs a person in to API v1 through the OpenID redirect flow, with a CSRF-protected session', async () => {
  const browser = new Browserless();
  const anonymous = await browser.request(`${wharf.baseUrl}/api/v1/user/`);
  expect(anonymous.response.status).toBe(401);

  const landed = (await browser.signIn(`${wharf.baseUrl}/api/v1/signin/openid`, 'alice')) as Visit;
  expect(landed.url.pathname).toBe('/api/v1/user/');
  expect(landed.response.status).toBe(200);
  expect(JSON.parse(landed.body)).toMatchObject({ anonymous: false, username: 'alice', kind: 'user' });

  // The session is an ordinary API v1 session: state changes need its CSRF token.
  const cookie = browser.jar.header(new URL(wharf.baseUrl));
  const create = (headers: Record<string, string>) =>
    fetch(`${wharf.baseUrl}/api/v1/repository`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ namespace: 'alice', repository: 'web', visibility: 'private', description: '' }),
    });
  expect((await create({})).status).toBe(403);
  const { csrf_token } = (await (
    await fetch(`${wharf.baseUrl}/csrf_token`, { headers: { cookie } })
  ).json()) as {
    csrf_token: string;
  };
  expect((await create({ 'x-csrf-token': csrf_token })).status).toBe(201);
});

it('refuses API v1 to a person outside the allow-lists', async () => {
  const browser = new Browserless();
  const refused = (await browser.signIn(`${wharf.baseUrl}/api/v1/signin/openid`, 'bob')) as Visit;
  expect(refused.response.status).toBe(403);
  expect((await browser.request(`${wharf.baseUrl}/api/v1/user/`)).response.status).toBe(401);
});
