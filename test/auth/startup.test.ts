import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, call } from '../support/auth-server.ts';
import { runWharf, startWharfProcess } from '../support/spawn-wharf.ts';

describe('the program at start-up', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-startup-'));
  });
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it.each([
    ['WHARF_BCRYPT_COST', 'abc', /WHARF_BCRYPT_COST/],
    ['WHARF_BCRYPT_COST', '4', /auth\.bcryptCost.*WHARF_BCRYPT_COST/],
    ['WHARF_SIGNUP', 'maybe', /auth\.signup.*WHARF_SIGNUP.*"admin", "open", "disabled"/],
    ['WHARF_ADMIN_PASSWORD', 'short', /auth\.adminPassword.*WHARF_ADMIN_PASSWORD/],
    ['WHARF_PASSWORD_WORKERS', '-1', /auth\.passwordWorkers.*WHARF_PASSWORD_WORKERS/],
    ['WHARF_PASSWORD_QUEUE_LIMIT', 'many', /WHARF_PASSWORD_QUEUE_LIMIT/],
  ])('refuses %s=%s with exit code 2 and a message naming the setting', async (name, value, message) => {
    const run = runWharf({ WHARF_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', [name]: value });
    const code = await run.exit;
    expect(code).toBe(2);
    expect(run.output()).toMatch(message);
  });

  it('bootstraps the admin from WHARF_ADMIN_PASSWORD once, idempotently, without logging the password', async () => {
    const password = 'bootstrap-secret-Zq81';
    const first = await startWharfProcess({
      WHARF_DATA_DIR: dataDir,
      WHARF_ADMIN_PASSWORD: password,
      WHARF_ROLES: 'auth',
    });
    const me = await call(`${first.url}/auth/api/v1/me`, 'GET', { auth: basic('admin', password) });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ name: 'admin', admin: true });
    await call(`${first.url}/ktra/api/v1/login/admin`, 'POST', { json: { password } });
    await first.stop();
    expect(first.output()).toContain('bootstrap administrator created');

    // A second start with another password leaves the existing admin (and its password) alone.
    const second = await startWharfProcess({
      WHARF_DATA_DIR: dataDir,
      WHARF_ADMIN_PASSWORD: 'another-password-1',
      WHARF_ROLES: 'auth',
    });
    expect(
      (await call(`${second.url}/auth/api/v1/me`, 'GET', { auth: basic('admin', password) })).status,
    ).toBe(200);
    expect(
      (await call(`${second.url}/auth/api/v1/me`, 'GET', { auth: basic('admin', 'another-password-1') }))
        .status,
    ).toBe(401);
    await second.stop();
    expect(second.output()).toContain('bootstrap administrator already exists');
    for (const output of [first.output(), second.output()]) {
      expect(output).not.toContain(password);
      expect(output).not.toContain('another-password-1');
    }
  });
});
