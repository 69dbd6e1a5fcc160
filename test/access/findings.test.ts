import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzipBomb, makeTar, metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import { scrape } from '../support/metrics.ts';
import { startServer, type TestServer } from '../support/wharf.ts';

/**
 * Findings of the attacker's pass (issue #10) that the matrices do not replay, each over real
 * sockets: repositories appear only when something is pushed, and a refused publish costs no
 * decompression.
 */
describe('findings, replayed', () => {
  let server: TestServer;
  const basic = (user: string, secret: string) =>
    `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;
  const ALICE = basic('alice', 'alice-password');

  const repositoryKeys = async () =>
    (await server.store.list({ prefix: 'oci/repos/', delimiter: '/' })).prefixes.map((prefix) => prefix);

  async function jwt(scopes: string[]): Promise<{ status: number; token: string }> {
    const query = scopes.map((scope) => `scope=${encodeURIComponent(scope)}`).join('&');
    const response = await fetch(`${server.url}/v2/auth?service=wharf&${query}`, {
      headers: { authorization: ALICE },
    });
    return { status: response.status, token: ((await response.json()) as { token: string }).token };
  }

  beforeAll(async () => {
    server = await startServer({ logLevel: 'warn', auth: { signup: 'open', bcryptCost: 10 } });
    for (const name of ['alice', 'bob']) {
      const created = await fetch(`${server.url}/ktra/api/v1/new_user/${name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password: `${name}-password` }),
      });
      expect(created.status).toBe(200);
    }
  });
  afterAll(async () => server?.stop());

  it('a token request with 500 push scopes creates no repository (it used to create 500)', async () => {
    const scopes = Array.from({ length: 500 }, (_, i) => `repository:alice/r${i}:push`);
    // 500 scopes do not fit in a URL; the OAuth2 form of the token endpoint takes them in its body.
    const response = await fetch(`${server.url}/v2/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        grant_type: 'password',
        service: 'wharf',
        username: 'alice',
        password: 'alice-password',
        scope: scopes.join(' '),
      }),
    });
    expect(response.status).toBe(200);
    const granted = ((await response.json()) as { scope: string }).scope.split(' ');
    expect(granted).toHaveLength(500);
    expect(granted[0]).toBe('repository:alice/r0:push');
    expect(await repositoryKeys()).toEqual([]);
  });

  it('a push that fails creates no repository; the first blob pushed does', async () => {
    const { token } = await jwt(['repository:alice/app:pull,push']);
    const bearer = { authorization: `Bearer ${token}` };
    const blob = Buffer.from('a layer');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const wrongDigest = `sha256:${'0'.repeat(64)}`;
    const refused = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${wrongDigest}`, {
      method: 'POST',
      headers: bearer,
      body: blob,
    });
    expect(refused.status).toBe(400);
    const invalidManifest = await fetch(`${server.url}/v2/alice/app/manifests/v1`, {
      method: 'PUT',
      headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json' }),
    });
    expect(invalidManifest.status).toBe(400);
    // An upload session started and cancelled is not a push either.
    const session = await fetch(`${server.url}/v2/alice/app/blobs/uploads/`, {
      method: 'POST',
      headers: bearer,
    });
    expect(session.status).toBe(202);
    const cancel = await fetch(`${server.url}${session.headers.get('location')}`, {
      method: 'DELETE',
      headers: bearer,
    });
    expect(cancel.status).toBe(204);
    expect(await repositoryKeys()).toEqual([]);

    const pushed = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: bearer,
      body: blob,
    });
    expect(pushed.status).toBe(201);
    expect(await repositoryKeys()).toEqual(['oci/repos/alice%2Fapp/']);
  });

  it('a publish refused for permission inflates nothing (it used to inflate the whole .crate first)', async () => {
    const token = async (user: string) => {
      const response = await fetch(`${server.url}/ktra/api/v1/login/${user}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password: `${user}-password` }),
      });
      return ((await response.json()) as { token: string }).token;
    };
    const publish = (authorization: string, body: Buffer) =>
      fetch(`${server.url}/api/v1/crates/new`, { method: 'PUT', headers: { authorization }, body });
    const owned = await publish(
      await token('alice'),
      publishBody(metadata('owned', '1.0.0'), await simpleCrate('owned', '1.0.0')),
    );
    expect(owned.status).toBe(200);
    const inflated = async () => (await scrape(server.metricsUrl)).value('wharf_cargo_unpacked_bytes_total');
    const before = await inflated();
    const archive = await makeTar([
      { name: 'owned-2.0.0/Cargo.toml', body: '[package]\nname = "owned"\nversion = "2.0.0"\n' },
    ]);
    const bomb = await gzipBomb(archive, 64);
    const refused = await publish(await token('bob'), publishBody(metadata('owned', '2.0.0'), bomb));
    expect(refused.status).toBe(403);
    expect(await inflated()).toBe(before);
  });

  it('permission grants name accounts as the AuthService does: case-insensitively', async () => {
    const created = await fetch(`${server.url}/auth/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: ALICE, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'admin-of-app' }),
    });
    const bearer = { authorization: `Bearer ${((await created.json()) as { token: string }).token}` };
    const granted = await fetch(`${server.url}/api/v1/repository/alice/app/permissions/user/Bob`, {
      method: 'PUT',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'read' }),
    });
    expect(granted.status).toBe(200);
    expect(await granted.json()).toEqual({ name: 'bob', role: 'read' });
    const read = await fetch(`${server.url}/api/v1/repository/alice/app/permissions/user/bob`, {
      headers: bearer,
    });
    expect(await read.json()).toEqual({ name: 'bob', role: 'read' });
  });
});
