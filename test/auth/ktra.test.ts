import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, call, type RunningServer, SERVICE_AUTH, startServer } from '../support/auth-server.ts';

const ADMIN_PASSWORD = 'admin-password-for-ktra';

describe('Ktra user endpoints', () => {
  let server: RunningServer;
  let ktra: string;
  const verify = (token: string) =>
    call(`${server.url}/restauth/verify`, 'POST', { auth: SERVICE_AUTH, json: { token } });

  beforeAll(async () => {
    server = await startServer({ auth: { adminPassword: ADMIN_PASSWORD, signup: 'open' } });
    ktra = `${server.url}/ktra/api/v1`;
  });
  afterAll(async () => server?.close());

  it('new_user creates a user and returns a token that authenticates it', async () => {
    const created = await call(`${ktra}/new_user/ferris`, 'POST', { json: { password: 'ferris-pass-1' } });
    expect(created.status).toBe(200);
    const { token } = created.body as { token: string };
    expect(token).toMatch(/^wharf_[A-Za-z0-9_-]{43}$/);
    const who = await verify(token);
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ name: 'ferris', kind: 'user', via: 'token', scopes: null });
  });

  it('answers errors in Ktra format with sensible codes', async () => {
    const duplicate = await call(`${ktra}/new_user/ferris`, 'POST', { json: { password: 'ferris-pass-2' } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toEqual({ errors: [{ detail: expect.stringContaining('exists') }] });
    const badName = await call(`${ktra}/new_user/bad:name`, 'POST', { json: { password: 'password-123' } });
    expect(badName.status).toBe(400);
    expect(badName.body).toEqual({ errors: [{ detail: expect.any(String) }] });
    const noBody = await call(`${ktra}/new_user/someone`, 'POST', { json: {} });
    expect(noBody.status).toBe(400);
    expect(noBody.body).toEqual({ errors: [{ detail: expect.any(String) }] });
    const wrong = await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'wrong-password' } });
    expect(wrong.status).toBe(403);
    expect(wrong.body).toEqual({ errors: [{ detail: 'invalid username or password' }] });
    const unknown = await call(`${ktra}/login/nobody`, 'POST', { json: { password: 'wrong-password' } });
    expect(unknown.status).toBe(403);
    expect(unknown.body).toEqual(wrong.body);
  });

  it('login issues a new token and revokes the previous one (one Ktra token per user)', async () => {
    const first = (await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'ferris-pass-1' } }))
      .body as {
      token: string;
    };
    expect((await verify(first.token)).status).toBe(200);
    const second = await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'ferris-pass-1' } });
    expect(second.status).toBe(200);
    const { token } = second.body as { token: string };
    expect(token).not.toBe(first.token);
    expect((await verify(first.token)).status).toBe(404);
    expect((await verify(token)).status).toBe(200);
  });

  it('change_password checks the old password, rotates the token, and the new password works', async () => {
    const before = (await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'ferris-pass-1' } }))
      .body as {
      token: string;
    };
    const wrongOld = await call(`${ktra}/change_password/ferris`, 'POST', {
      json: { old_password: 'not-the-password', new_password: 'ferris-pass-2' },
    });
    expect(wrongOld.status).toBe(403);
    const tooShort = await call(`${ktra}/change_password/ferris`, 'POST', {
      json: { old_password: 'ferris-pass-1', new_password: 'short' },
    });
    expect(tooShort.status).toBe(400);
    expect(
      (await call(`${ktra}/change_password/ferris`, 'POST', { json: { old_password: 'x' } })).status,
    ).toBe(400);
    const changed = await call(`${ktra}/change_password/ferris`, 'POST', {
      json: { old_password: 'ferris-pass-1', new_password: 'ferris-pass-2' },
    });
    expect(changed.status).toBe(200);
    const { token } = changed.body as { token: string };
    expect((await verify(before.token)).status).toBe(404);
    expect((await verify(token)).status).toBe(200);
    expect((await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'ferris-pass-1' } })).status).toBe(
      403,
    );
    expect((await call(`${ktra}/login/ferris`, 'POST', { json: { password: 'ferris-pass-2' } })).status).toBe(
      200,
    );
  });
});

describe('signup policies', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
  });

  it('admin (the default): only an authenticated administrator may call new_user', async () => {
    const server = await startServer({ auth: { adminPassword: ADMIN_PASSWORD } });
    servers.push(server);
    const url = `${server.url}/ktra/api/v1/new_user`;
    const anonymous = await call(`${url}/mallory`, 'POST', { json: { password: 'mallory-pass' } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toEqual({ errors: [{ detail: expect.any(String) }] });
    const login = await call(`${server.url}/ktra/api/v1/login/admin`, 'POST', {
      json: { password: ADMIN_PASSWORD },
    });
    const adminToken = (login.body as { token: string }).token;

    const byAdminToken = await call(`${url}/newbie`, 'POST', {
      auth: adminToken,
      json: { password: 'newbie-pass' },
    });
    expect(byAdminToken.status).toBe(200);
    const byAdminBasic = await call(`${url}/newbie2`, 'POST', {
      auth: basic('admin', ADMIN_PASSWORD),
      json: { password: 'newbie-pass' },
    });
    expect(byAdminBasic.status).toBe(200);
    const newbieToken = (byAdminToken.body as { token: string }).token;
    const byUser = await call(`${url}/other`, 'POST', {
      auth: `Bearer ${newbieToken}`,
      json: { password: 'other-pass' },
    });
    expect(byUser.status).toBe(403);
  });

  it('open: anyone may sign up; disabled: nobody, not even an administrator', async () => {
    const open = await startServer({ auth: { signup: 'open' } });
    servers.push(open);
    expect(
      (await call(`${open.url}/ktra/api/v1/new_user/anyone`, 'POST', { json: { password: 'anyone-pass' } }))
        .status,
    ).toBe(200);
    const closed = await startServer({ auth: { signup: 'disabled', adminPassword: ADMIN_PASSWORD } });
    servers.push(closed);
    const refused = await call(`${closed.url}/ktra/api/v1/new_user/anyone`, 'POST', {
      auth: basic('admin', ADMIN_PASSWORD),
      json: { password: 'anyone-pass' },
    });
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual({ errors: [{ detail: 'signup is disabled' }] });
  });
});
