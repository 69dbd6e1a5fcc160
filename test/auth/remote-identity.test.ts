import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../server/config/load.ts';
import type { IdentityClient } from '../../server/identity/principal.ts';
import { TooManyAttemptsError } from '../../server/identity/rate-limit.ts';
import { createRemoteIdentityClient } from '../../server/registry/remote-identity.ts';
import {
  call,
  type RunningServer,
  SERVICE_AUTH,
  SERVICE_PASSWORD,
  startServer,
} from '../support/auth-server.ts';

describe('the registry-side IdentityClient over RestAuth', () => {
  let server: RunningServer;
  const clientFor = (password: string, credentialCacheSeconds: number): IdentityClient =>
    createRemoteIdentityClient(
      validateConfig({
        roles: ['registry'],
        registry: {
          authUrl: server.url,
          serviceName: 'tester',
          servicePassword: password,
          credentialCacheSeconds,
        },
      }).registry,
    );

  beforeAll(async () => {
    server = await startServer({
      auth: {
        signup: 'open',
        rateLimit: { perAccountAndAddress: 2, perAddress: 100, windowSeconds: 60 },
        // A registry is trusted to relay its client's address.
        services: [
          { name: 'tester', password: SERVICE_PASSWORD, permissions: ['*'], forwardsClientAddress: true },
        ],
      },
    });
    await call(`${server.url}/ktra/api/v1/new_user/remo`, 'POST', { json: { password: 'remo-password' } });
    await call(`${server.url}/restauth/groups/`, 'POST', {
      auth: SERVICE_AUTH,
      json: { group: 'ops', users: ['remo'] },
    });
  });
  afterAll(async () => server?.close());

  it('answers who a token or password is, with groups, and what exists', async () => {
    const client = clientFor(SERVICE_PASSWORD, 0);
    const login = await call(`${server.url}/ktra/api/v1/login/remo`, 'POST', {
      json: { password: 'remo-password' },
    });
    const { token } = login.body as { token: string };
    expect(await client.verifyToken(token)).toEqual({
      kind: 'user',
      name: 'remo',
      groups: ['ops'],
      scopes: null,
      via: 'token',
      admin: false,
      credential: { type: 'token', user: 'remo', tokenId: expect.stringMatching(/^[0-9a-f]{16}$/) },
    });
    const byPassword = await client.verifyPassword('remo', 'remo-password');
    expect(byPassword).toMatchObject({
      name: 'remo',
      via: 'password',
      credential: { type: 'password', user: 'remo', passwordChangedAt: expect.any(String) },
    });
    // A credential checked earlier, checked again: still good, and the user as it is now.
    expect(await client.revalidate(byPassword!.credential!, null)).toMatchObject({
      name: 'remo',
      groups: ['ops'],
    });
    expect(await client.verifyToken('wharf_nonsense')).toBeNull();
    expect(await client.userExists('remo')).toBe(true);
    expect(await client.userExists('nobody')).toBe(false);
    expect(await client.groupExists('ops')).toBe(true);
    expect(await client.groupExists('nope')).toBe(false);
    expect(await client.groupMembers('ops')).toEqual(['remo']);
    expect(await client.groupMembers('nope')).toBeNull();
    // Without a cache, a revocation is seen on the next check, also for references to the token.
    const tokenRef = (await client.verifyToken(token))!.credential!;
    expect(await client.revalidate(tokenRef, null)).toMatchObject({ name: 'remo', via: 'token' });
    await call(`${server.url}/ktra/api/v1/login/remo`, 'POST', { json: { password: 'remo-password' } });
    expect(await client.verifyToken(token)).toBeNull();
    expect(await client.revalidate(tokenRef, null)).toBeNull();
  });

  it('fails loudly, not with a "no", when its service credentials are wrong', async () => {
    await expect(clientFor('wrong-service-password', 0).verifyToken('wharf_x')).rejects.toThrow(/401/);
  });

  it('relays the end user address and surfaces the AuthService rate limit as TooManyAttemptsError', async () => {
    const client = clientFor(SERVICE_PASSWORD, 0);
    expect(await client.verifyPassword('remo', 'bad-guess-1', '203.0.113.7')).toBeNull();
    expect(await client.verifyPassword('remo', 'bad-guess-2', '203.0.113.7')).toBeNull();
    const refused = client.verifyPassword('remo', 'remo-password', '203.0.113.7');
    await expect(refused).rejects.toBeInstanceOf(TooManyAttemptsError);
    await expect(refused).rejects.toMatchObject({ retryAfterSeconds: expect.any(Number) });
    // The same user from another end-user address, through the same registry, is not refused.
    expect(await client.verifyPassword('remo', 'remo-password', '203.0.113.8')).toMatchObject({
      name: 'remo',
    });
  });
});
