import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../server/config/load.ts';
import { createRemoteIdentityClient } from '../../server/registry/remote-identity.ts';
import { basic, call } from '../support/auth-server.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

const SERVICE = { name: 'registry', password: 'registry-service-password-42' };
const CACHE_SECONDS = 2;
/** Time for the polling request itself on a busy machine. */
const SLACK_MS = 1500;

/**
 * Two AuthService processes on one store stay consistent: what one writes, the other reads at
 * once (they share the store, not caches); a registry's remote client follows within its cache bound.
 */
export function twoProcessesOnOneStore(
  name: string,
  setup: () => Promise<{ env: Record<string, string>; cleanup(): Promise<void> }>,
): void {
  describe(`two AuthService processes on one ${name}`, () => {
    let a: WharfProcess;
    let b: WharfProcess;
    let cleanup: () => Promise<void>;
    let configDir: string;
    const as = { auth: basic(SERVICE.name, SERVICE.password) };

    beforeAll(async () => {
      const store = await setup();
      cleanup = store.cleanup;
      configDir = await mkdtemp(path.join(tmpdir(), 'wharf-two-'));
      const configFile = path.join(configDir, 'wharf.yaml');
      await writeFile(
        configFile,
        JSON.stringify({
          roles: ['auth'],
          auth: { signup: 'open', services: [{ ...SERVICE, permissions: ['*'] }] },
        }),
      );
      const env = { ...store.env, WHARF_CONFIG: configFile };
      [a, b] = await Promise.all([startWharfProcess(env), startWharfProcess(env)]);
    });
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await cleanup?.();
      await rm(configDir, { recursive: true, force: true });
    });

    it('a user created through one is verified through the other', async () => {
      expect(
        (
          await call(`${a.url}/restauth/users/`, 'POST', {
            ...as,
            json: { username: 'twin', password: 'twin-password' },
          })
        ).status,
      ).toBe(201);
      expect(
        (await call(`${b.url}/restauth/users/twin/`, 'POST', { ...as, form: { password: 'twin-password' } }))
          .status,
      ).toBe(200);
      expect(
        (
          await call(`${b.url}/restauth/users/`, 'POST', {
            ...as,
            json: { username: 'twin', password: 'other-pass' },
          })
        ).status,
      ).toBe(409);
    });

    it('concurrent group changes through both processes lose no update', async () => {
      await call(`${a.url}/restauth/groups/`, 'POST', { ...as, json: { group: 'crew' } });
      const names = Array.from({ length: 8 }, (_, i) => `crew${i}`);
      for (const user of names)
        await call(`${a.url}/restauth/users/`, 'POST', { ...as, json: { username: user } });
      await Promise.all(
        names.map((user, i) =>
          call(`${i % 2 ? a.url : b.url}/restauth/groups/crew/users/`, 'POST', { ...as, json: { user } }),
        ),
      );
      expect((await call(`${b.url}/restauth/groups/crew/users/`, 'GET', as)).body).toEqual(names);
    });

    it('a token revoked on one process is refused on the other at once, and by a registry within the cache bound', async () => {
      const login = await call(`${a.url}/ktra/api/v1/login/twin`, 'POST', {
        json: { password: 'twin-password' },
      });
      const { token } = login.body as { token: string };
      const remote = createRemoteIdentityClient(
        validateConfig({
          roles: ['registry'],
          registry: {
            authUrl: b.url,
            serviceName: SERVICE.name,
            servicePassword: SERVICE.password,
            credentialCacheSeconds: CACHE_SECONDS,
          },
        }).registry,
      );
      expect(await remote.verifyToken(token)).toMatchObject({ name: 'twin', via: 'token' });
      expect(await remote.verifyPassword('twin', token)).toMatchObject({ name: 'twin' });
      expect(await remote.userExists('twin')).toBe(true);
      expect(await remote.groupMembers('crew')).toHaveLength(8);

      // Ktra login through A revokes the token; B reads the store and refuses it immediately.
      await call(`${a.url}/ktra/api/v1/login/twin`, 'POST', { json: { password: 'twin-password' } });
      const revokedAt = Date.now();
      expect((await call(`${b.url}/restauth/verify`, 'POST', { ...as, json: { token } })).status).toBe(404);
      // The registry's cache may still say yes, but never longer than the bound.
      while ((await remote.verifyToken(token)) !== null) {
        expect(Date.now() - revokedAt).toBeLessThanOrEqual(CACHE_SECONDS * 1000 + SLACK_MS);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Date.now() - revokedAt).toBeLessThanOrEqual(CACHE_SECONDS * 1000 + SLACK_MS);
    });
  });
}
