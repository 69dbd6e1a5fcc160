import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../server/config/load.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

/**
 * Behind an Ingress: X-Forwarded-For/-Proto/-Host count only when the peer is a trusted proxy, on
 * every surface (cargo's config.json, the OCI token realm, the /me page, audit lines).
 */
describe('trusted proxies', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  const forwarded = {
    'x-forwarded-for': '203.0.113.7',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'registry.example.com',
  };

  async function surfaces(url: string) {
    const config = (await (await fetch(`${url}/index/config.json`, { headers: forwarded })).json()) as {
      dl: string;
    };
    const ping = await fetch(`${url}/v2/`, { headers: forwarded });
    const me = await (await fetch(`${url}/me`, { headers: forwarded })).text();
    await fetch(`${url}/ktra/api/v1/login/nobody`, {
      method: 'POST',
      headers: { ...forwarded, 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'not-the-password' }),
    });
    return { dl: config.dl as string, realm: ping.headers.get('www-authenticate') ?? '', me };
  }

  it('ignores forwarded headers from a peer that is not a trusted proxy', async () => {
    server = await startServer({ auth: { bcryptCost: 10 } });
    const { dl, realm, me } = await surfaces(server.url);
    expect(dl).toBe(`${server.url}/api/v1/crates`);
    expect(realm).toContain(`realm="${server.url}/v2/auth"`);
    expect(me).toContain(`${server.url}/ktra/api/v1/login/`);
    expect(me).not.toContain('registry.example.com');
    const failed = server
      .logs()
      .split('\n')
      .find((line) => line.includes('"login.failed"'));
    expect(failed).toContain('"address":"127.0.0.1"');
  });

  it('honours them from a trusted proxy, and names the end user in audit lines', async () => {
    server = await startServer({ auth: { bcryptCost: 10 }, trustedProxies: ['127.0.0.0/8'] });
    const { dl, realm, me } = await surfaces(server.url);
    expect(dl).toBe('https://registry.example.com/api/v1/crates');
    expect(realm).toContain('realm="https://registry.example.com/v2/auth"');
    expect(me).toContain('https://registry.example.com/ktra/api/v1/login/');
    const failed = server
      .logs()
      .split('\n')
      .find((line) => line.includes('"login.failed"'));
    expect(failed).toContain('"address":"203.0.113.7"');
  });

  it('takes the address the trusted proxy saw, not what the client wrote before it', async () => {
    server = await startServer({ auth: { bcryptCost: 10 }, trustedProxies: ['127.0.0.1'] });
    // The client sent "X-Forwarded-For: 198.51.100.1"; the ingress appended the address it saw.
    await fetch(`${server.url}/ktra/api/v1/login/nobody`, {
      method: 'POST',
      headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.9', 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'not-the-password' }),
    });
    const failed = server
      .logs()
      .split('\n')
      .find((line) => line.includes('"login.failed"'));
    expect(failed).toContain('"address":"203.0.113.9"');
  });

  it('a configured publicUrl wins over any header', async () => {
    server = await startServer({ publicUrl: 'https://crates.example.org/', trustedProxies: ['127.0.0.1'] });
    const { dl, realm } = await surfaces(server.url);
    expect(dl).toBe('https://crates.example.org/api/v1/crates');
    expect(realm).toContain('realm="https://crates.example.org/v2/auth"');
  });

  it('warns at start-up when links follow the Host header on a non-loopback listener', async () => {
    server = await startServer({ host: '0.0.0.0' });
    expect(server.logs()).toContain('publicUrl is not set');
    await server.stop();
    server = await startServer({ host: '0.0.0.0', publicUrl: 'https://crates.example.org' });
    expect(server.logs()).not.toContain('publicUrl is not set');
    await server.stop();
    server = await startServer({ host: '127.0.0.1' });
    expect(server.logs()).not.toContain('publicUrl is not set');
  });

  it('refuses an entry that is not an address, a CIDR or a named range', () => {
    expect(() => validateConfig({ trustedProxies: ['10.0.0.0/8', 'uniquelocal', '::1'] })).not.toThrow();
    for (const bad of ['ingress', '10.0.0.0/33', '10.0.0/8', '10.0.0.1/8/2'])
      expect(() => validateConfig({ trustedProxies: [bad] })).toThrow(/trustedProxies/);
  });
});
