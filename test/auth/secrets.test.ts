import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../../server/store/object-store.ts';
import {
  basic,
  call,
  type RunningServer,
  SERVICE_AUTH,
  SERVICE_PASSWORD,
  startServer,
} from '../support/auth-server.ts';

/** Every object in the store, key and content, read back through the store itself. */
async function dumpStore(store: ObjectStore): Promise<string> {
  let dump = '';
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ ...(continuationToken ? { continuationToken } : {}) });
    for (const object of page.objects) {
      const found = await store.get(object.key);
      dump += `${object.key}\n${found ? await text(found.body) : ''}\n`;
    }
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return dump;
}

describe('secrets stay secret', () => {
  let server: RunningServer;
  const secrets: string[] = [];
  const keep = (secret: string) => {
    secrets.push(secret);
    return secret;
  };
  const ADMIN = keep('admin-secret-Kx7Qv2');

  beforeAll(async () => {
    keep(SERVICE_PASSWORD);
    server = await startServer({ logLevel: 'trace', auth: { adminPassword: ADMIN, signup: 'open' } });
    const url = server.url;
    const as = { auth: SERVICE_AUTH };
    const token = async (response: Promise<{ status: number; body: unknown }>) => {
      const { status, body } = await response;
      expect(status).toBeLessThan(300);
      return keep((body as { token: string }).token);
    };

    // Every endpoint, with a distinct secret each time, succeeding and failing.
    await token(
      call(`${url}/ktra/api/v1/new_user/sam`, 'POST', { json: { password: keep('sam-pass-One1') } }),
    );
    await token(call(`${url}/ktra/api/v1/login/sam`, 'POST', { json: { password: 'sam-pass-One1' } }));
    await call(`${url}/ktra/api/v1/login/sam`, 'POST', { json: { password: keep('sam-wrong-Two2') } });
    const t3 = await token(
      call(`${url}/ktra/api/v1/change_password/sam`, 'POST', {
        json: { old_password: 'sam-pass-One1', new_password: keep('sam-pass-Three3') },
      }),
    );
    await call(`${url}/ktra/api/v1/change_password/sam`, 'POST', {
      json: { old_password: keep('sam-wrong-Four4'), new_password: keep('sam-pass-Five5') },
    });
    await call(`${url}/restauth/users/`, 'POST', {
      ...as,
      form: { username: 'rita', password: keep('rita-pass-Six6') },
    });
    await call(`${url}/restauth/users/`, 'POST', {
      ...as,
      json: { username: 'rob', password: keep('rob-pass-Seven7') },
    });
    await call(`${url}/restauth/users/rita/`, 'POST', { ...as, form: { password: 'rita-pass-Six6' } });
    await call(`${url}/restauth/users/rita/`, 'POST', {
      ...as,
      json: { password: keep('rita-wrong-Eight8') },
    });
    await call(`${url}/restauth/users/rita/`, 'PUT', { ...as, form: { password: keep('rita-pass-Nine9') } });
    await call(`${url}/restauth/users/`, 'GET', { auth: basic('tester', keep('bad-service-pass-Ten10')) });
    const named = await token(
      call(`${url}/auth/api/v1/tokens`, 'POST', { auth: t3, json: { name: 'n', scopes: ['pull'] } }),
    );
    await call(`${url}/restauth/verify`, 'POST', { ...as, json: { token: named } });
    await call(`${url}/restauth/verify`, 'POST', {
      ...as,
      json: { token: keep('wharf_not-a-real-token-Eleven11') },
    });
    await call(`${url}/restauth/verify`, 'POST', {
      ...as,
      json: { username: 'rita', password: 'rita-pass-Nine9' },
    });
    await call(`${url}/auth/api/v1/me`, 'GET', { auth: `Bearer ${named}` });
    await call(`${url}/auth/api/v1/me`, 'GET', { auth: basic('sam', 'sam-pass-Three3') });
    await call(`${url}/auth/api/v1/me`, 'GET', { auth: keep('wharf_unknown-Twelve12') });
    await call(`${url}/auth/api/v1/users`, 'POST', {
      auth: basic('admin', ADMIN),
      json: { username: 'ann', password: keep('ann-pass-Thirteen13') },
    });
    await call(`${url}/auth/api/v1/users/ann`, 'PATCH', {
      auth: basic('admin', ADMIN),
      json: { password: keep('ann-pass-Fourteen14') },
    });
    const service = await call(`${url}/auth/api/v1/services/svc`, 'PUT', {
      auth: basic('admin', ADMIN),
      json: { permissions: ['user_exists'] },
    });
    const servicePassword = keep((service.body as { password: string }).password);
    await call(`${url}/restauth/users/rita`, 'GET', { auth: basic('svc', servicePassword) });
    await call(`${url}/auth/api/v1/services/svc2`, 'PUT', {
      auth: basic('admin', ADMIN),
      json: { permissions: ['user_exists'], password: keep('chosen-service-Fifteen15') },
    });
    // Malformed requests make Fastify log validation errors: they must not echo secrets either.
    await call(`${url}/ktra/api/v1/login/sam`, 'POST', {
      json: { password: 12345, extra: keep('Sixteen16-secret') },
    });
    await call(`${url}/auth/api/v1/tokens`, 'POST', {
      auth: t3,
      json: { name: 'x', bogus: keep('Seventeen17-secret') },
    });
    // Unparseable JSON: the parser's error must not quote the body into the logs.
    for (const target of ['/ktra/api/v1/login/sam', '/restauth/users/rita/']) {
      await fetch(`${url}${target}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: SERVICE_AUTH },
        body: `{"password":"${keep(`Eighteen18-${target.length}`)}", oops}`,
      });
    }
    expect(secrets.length).toBeGreaterThan(20);
  });
  afterAll(async () => server?.close());

  it('no password or token appears in the logs', () => {
    const logs = server.logs.join('');
    expect(logs).toContain('"url":"/ktra/api/v1/login/sam"'); // the capture works
    for (const secret of secrets) expect(logs, `log leaks ${secret.slice(0, 12)}…`).not.toContain(secret);
  });

  it('writes an audit trail of security-relevant changes, without secrets', () => {
    const audit = server.logs
      .map(
        (line) => JSON.parse(line) as { audit?: string; user?: string; address?: string; service?: string },
      )
      .filter((line) => line.audit);
    const events = new Set(audit.map((line) => line.audit));
    for (const event of [
      'user.created',
      'user.password_changed',
      'token.issued',
      'login.failed',
      'service.saved',
    ])
      expect(events, event).toContain(event);
    expect(audit).toContainEqual(
      expect.objectContaining({ audit: 'login.failed', user: 'sam', address: '127.0.0.1' }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ audit: 'service.saved', service: 'svc', by: 'admin' }),
    );
  });

  it('no token or password is stored in clear (every object in the store read back)', async () => {
    const dump = await dumpStore(server.store);
    expect(dump).toContain('auth/users/sam.json'); // the walk works
    for (const secret of secrets) {
      expect(dump, `store holds ${secret.slice(0, 12)}…`).not.toContain(secret);
      // Nor the part after the prefix (a token stored without its `wharf_`).
      if (secret.startsWith('wharf_')) expect(dump).not.toContain(secret.slice('wharf_'.length));
    }
    expect(dump).toMatch(/"passwordHash":"\$2[aby]\$10\$/);
  });
});
