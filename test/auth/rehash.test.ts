import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readJson } from '../../server/store/json-doc.ts';
import { call, SERVICE_AUTH, startServer } from '../support/auth-server.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

it('re-hashes a password at the new bcrypt cost on its next successful check', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-rehash-'));
  dirs.push(dataDir);
  const before = await startServer({ auth: { bcryptCost: 10, signup: 'open' } }, { dataDir });
  await call(`${before.url}/ktra/api/v1/new_user/olduser`, 'POST', { json: { password: 'old-user-pass' } });
  await before.close();

  const after = await startServer({ auth: { bcryptCost: 11 } }, { dataDir });
  try {
    const hashOf = async () =>
      (await readJson<{ passwordHash: string }>(after.store, 'auth/users/olduser.json'))?.value.passwordHash;
    expect(await hashOf()).toMatch(/^\$2[aby]\$10\$/);
    const url = `${after.url}/restauth/users/olduser/`;
    expect(
      (await call(url, 'POST', { auth: SERVICE_AUTH, form: { password: 'wrong-password' } })).status,
    ).toBe(404);
    expect(await hashOf()).toMatch(/^\$2[aby]\$10\$/);
    expect(
      (await call(url, 'POST', { auth: SERVICE_AUTH, form: { password: 'old-user-pass' } })).status,
    ).toBe(200);
    expect(await hashOf()).toMatch(/^\$2[aby]\$11\$/);
    expect(
      (await call(url, 'POST', { auth: SERVICE_AUTH, form: { password: 'old-user-pass' } })).status,
    ).toBe(200);
  } finally {
    await after.close();
  }
});
