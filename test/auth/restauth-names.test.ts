import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../server/access/policy.ts';
import type { Principal } from '../../server/identity/principal.ts';
import { basic, call, type RunningServer, startServer } from '../support/auth-server.ts';

/**
 * Users moved from a RestAuth server: names with spaces and non-ASCII letters, 6-character
 * passwords, accepted from a service declared for them and nobody else; such a user signs in
 * everywhere and owns no registry namespace.
 */

const WIKI = { auth: basic('wiki', 'wiki-service-password-0123') };
const REFERENCE = { auth: basic('tester', 'service-password-0123456789') };

describe('RestAuth names and passwords per service', () => {
  let server: RunningServer;
  let restauth: string;

  beforeAll(async () => {
    server = await startServer({
      roles: ['auth', 'registry'],
      auth: {
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
    restauth = `${server.url}/restauth`;
  });
  afterAll(async () => server?.close());

  const create = (as: { auth: string }, user: string, password: string) =>
    call(`${restauth}/users/`, 'POST', { ...as, json: { user, password } });

  it('accepts RestAuth names only from a service declared with userNames: restauth', async () => {
    expect((await create(REFERENCE, 'mati space', 'password1')).status).toBe(400);
    expect((await create(WIKI, 'mati space', 'password1')).status).toBe(201);
    expect((await create(WIKI, 'Jürgen', 'password1')).status).toBe(201);
    // One account whatever the case and the Unicode form (NFD ü is NFC ü).
    expect((await create(WIKI, 'JU\u0308RGEN', 'password1')).status).toBe(409);
    expect((await create(WIKI, '愉快', 'password1')).status).toBe(201);
    const refused = ['a+b', ' lead', 'trail ', 'x'.repeat(65), 'tab\tname', 'a/b', 'a:b', 'new\nline', ''];
    for (const name of refused)
      expect([name, (await create(WIKI, name, 'password1')).status]).toEqual([name, name ? 412 : 400]);
    const list = await call(`${restauth}/users/`, 'GET', WIKI);
    expect(list.body).toEqual(expect.arrayContaining(['jürgen', 'mati space', '愉快']));
    // Everyone finds them, also a service that may not create them.
    expect((await call(`${restauth}/users/J%C3%BCrgen/`, 'GET', REFERENCE)).status).toBe(200);
    expect(
      (
        await call(`${restauth}/users/mati%20space/`, 'POST', {
          ...REFERENCE,
          json: { password: 'password1' },
        })
      ).status,
    ).toBe(200);
  });

  it("applies each service's shortest password when a password is set, never when one is checked", async () => {
    expect((await create(WIKI, 'six', 'abcdef')).status).toBe(201);
    expect((await create(WIKI, 'five', 'abcde')).status).toBe(412);
    expect((await create(REFERENCE, 'sixref', 'abcdef')).status).toBe(400);
    expect(
      (await call(`${restauth}/users/six/`, 'PUT', { ...REFERENCE, json: { password: 'ghijkl' } })).status,
    ).toBe(400);
    expect(
      (await call(`${restauth}/users/six/`, 'PUT', { ...WIKI, json: { password: 'ghijkl' } })).status,
    ).toBe(204);
    // A 6-character password, once set, works everywhere: the reference service and Ktra login.
    expect(
      (await call(`${restauth}/users/six/`, 'POST', { ...REFERENCE, json: { password: 'ghijkl' } })).status,
    ).toBe(200);
    expect(
      (await call(`${server.url}/ktra/api/v1/login/six`, 'POST', { json: { password: 'ghijkl' } })).status,
    ).toBe(200);
  });

  it('lets a user named as RestAuth allows sign in everywhere, but own no namespace', async () => {
    const mati = { auth: basic('mati space', 'password1') };
    const issued = await call(`${server.url}/auth/api/v1/tokens`, 'POST', { ...mati, json: { name: 'ci' } });
    expect(issued.status).toBe(201);
    const bearer = { auth: `Bearer ${(issued.body as { token: string }).token}` };
    const me = await call(`${server.url}/api/v1/user/`, 'GET', bearer);
    expect([me.status, (me.body as { username: string }).username]).toEqual([200, 'mati space']);
    // No namespace of its name: creating a repository there, or robots, is refused, not attempted.
    const repository = await call(`${server.url}/api/v1/repository`, 'POST', {
      ...bearer,
      json: { repository: 'app', visibility: 'private', description: '' },
    });
    expect([repository.status, JSON.stringify(repository.body)]).toEqual([
      400,
      expect.stringContaining('Invalid repository name'),
    ]);
    const robots = await call(`${server.url}/api/v1/user/robots`, 'GET', bearer);
    expect([robots.status, JSON.stringify(robots.body)]).toEqual([
      400,
      expect.stringContaining('no namespace'),
    ]);
    expect((await call(`${server.url}/api/v1/user/robots/bot`, 'PUT', { ...bearer, json: {} })).status).toBe(
      400,
    );
    // The policy: only a valid namespace name is anyone's, a superuser's included.
    const policy = new AccessPolicy({
      superusers: ['mati space'],
      anonymousPull: false,
      cargoAuthRequired: false,
    });
    const principal: Principal = {
      kind: 'user',
      name: 'mati space',
      groups: [],
      scopes: null,
      via: 'password',
      admin: false,
      credential: { type: 'account', user: 'mati space' },
    };
    expect(policy.ownsNamespace(principal, 'mati space')).toBe(false);
    expect(policy.ownsNamespace({ ...principal, name: 'alice' }, 'alice')).toBe(true);
  });
});
