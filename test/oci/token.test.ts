import { calculateJwkThumbprint, createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { InjectOptions } from 'light-my-request';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseScope } from '../../server/registry/oci/token/scope.ts';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

describe('Docker token authentication', () => {
  let server: TestServer;
  const inject = (options: InjectOptions) => server.wharf.app.inject(options);
  const token = async (auth: string | null, scopes: string[], extra = '') => {
    const query = scopes.map((scope) => `scope=${encodeURIComponent(scope)}`).join('&');
    const response = await inject({
      method: 'GET',
      url: `/v2/auth?service=wharf&${query}${extra}`,
      headers: auth ? { authorization: auth } : {},
    });
    return response;
  };

  beforeAll(async () => {
    // Some tests change repository records behind wharf's back (as another replica would): no cache
    // bound here, so they take effect at once (the bound is tested in test/oci/replica-cache.test.ts).
    server = await startOci(
      { registry: { superusers: ['root'], oci: { metadataCacheMillis: 0 } } },
      { listen: false },
    );
    await createUser(server, 'alice', 'alice-password');
    await createUser(server, 'bob', 'bob-password-1');
  });
  afterAll(async () => server?.stop());

  it('challenges /v2/ with realm and service but no scope, and the API version header', async () => {
    const response = await inject({ method: 'GET', url: '/v2/' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const challenge = String(response.headers['www-authenticate']);
    expect(challenge).toMatch(/^Bearer realm="http:\/\/[^"]+\/v2\/auth",service="wharf"$/);
    expect(response.json().errors[0].code).toBe('UNAUTHORIZED');
  });

  it('challenges a repository operation with the scope to ask for', async () => {
    const response = await inject({ method: 'GET', url: '/v2/alice/app/manifests/latest' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toContain('scope="repository:alice/app:pull"');
  });

  it('issues an ES256 JWT whose kid is the RFC 7638 thumbprint of a key in the JWKS', async () => {
    const response = await token(basic('alice', 'alice-password'), ['repository:alice/app:pull,push']);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBeGreaterThanOrEqual(60);
    expect(Date.parse(body.issued_at)).not.toBeNaN();
    const header = decodeProtectedHeader(body.token);
    expect(header.alg).toBe('ES256');
    const jwks = (await inject({ method: 'GET', url: '/v2/auth/jwks' })).json();
    const key = jwks.keys.find((candidate: { kid: string }) => candidate.kid === header.kid);
    expect(key).toBeDefined();
    expect(await calculateJwkThumbprint({ kty: key.kty, crv: key.crv, x: key.x, y: key.y })).toBe(header.kid);
    const { payload } = await jwtVerify(body.token, createLocalJWKSet(jwks), {
      audience: 'wharf',
      issuer: 'wharf',
    });
    expect(payload.sub).toBe('alice');
    // A repository that does not exist yet, in her own namespace: she may push it (pushing creates it).
    expect(payload.access).toEqual([{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
  });

  it('grants the intersection of requested and permitted actions (a partial grant is not an error)', async () => {
    const response = await token(basic('bob', 'bob-password-1'), ['repository:alice/app:pull,push']);
    expect(response.statusCode).toBe(200);
    expect(decodeJwt(response.json().token).access).toEqual([
      { type: 'repository', name: 'alice/app', actions: [] },
    ]);
  });

  it('refuses bad credentials with 401 and accepts anonymous requests with an empty grant', async () => {
    expect((await token(basic('alice', 'wrong'), ['repository:alice/app:pull'])).statusCode).toBe(401);
    const anonymous = await token(null, ['repository:alice/app:pull']);
    expect(anonymous.statusCode).toBe(200);
    expect(decodeJwt(anonymous.json().token).sub).toBe('');
    expect(decodeJwt(anonymous.json().token).access).toEqual([
      { type: 'repository', name: 'alice/app', actions: [] },
    ]);
  });

  it('lets anyone pull a public repository, with or without a token, and nobody else push', async () => {
    const push = (await token(basic('alice', 'alice-password'), ['repository:alice/public:push'])).json()
      .token;
    const config = Buffer.from('{}');
    const digest = `sha256:${(await import('node:crypto')).createHash('sha256').update(config).digest('hex')}`;
    const upload = await inject({
      method: 'POST',
      url: `/v2/alice/public/blobs/uploads/?digest=${digest}`,
      headers: { authorization: `Bearer ${push}`, 'content-type': 'application/octet-stream' },
      payload: config,
    });
    expect(upload.statusCode).toBe(201);
    // Still private: an anonymous pull is challenged.
    expect((await inject({ method: 'GET', url: `/v2/alice/public/blobs/${digest}` })).statusCode).toBe(401);
    const record = await server.store.get('oci/repos/alice%2Fpublic/repository.json');
    const repository = JSON.parse(Buffer.concat(await record!.body.toArray()).toString());
    await server.store.put(
      'oci/repos/alice%2Fpublic/repository.json',
      JSON.stringify({ ...repository, visibility: 'public' }),
    );
    expect((await inject({ method: 'GET', url: `/v2/alice/public/blobs/${digest}` })).statusCode).toBe(200);
    const anonymous = await token(null, ['repository:alice/public:pull,push']);
    expect(decodeJwt(anonymous.json().token).access).toEqual([
      { type: 'repository', name: 'alice/public', actions: ['pull'] },
    ]);
    const bob = await token(basic('bob', 'bob-password-1'), ['repository:alice/public:pull,push,delete']);
    expect(decodeJwt(bob.json().token).access).toEqual([
      { type: 'repository', name: 'alice/public', actions: ['pull'] },
    ]);
  });

  it('serves the OAuth2 POST form with password and refresh_token grants', async () => {
    const first = await inject({
      method: 'POST',
      url: '/v2/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'password',
        service: 'wharf',
        client_id: 'test',
        access_type: 'offline',
        scope: 'repository:alice/app:pull repository:bob/other:pull',
        username: 'alice',
        password: 'alice-password',
      }).toString(),
    });
    expect(first.statusCode).toBe(200);
    const body = first.json();
    expect(body.scope).toBe('repository:alice/app:pull repository:bob/other:');
    expect(body.refresh_token).toBeTruthy();
    const refreshed = await inject({
      method: 'POST',
      url: '/v2/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'refresh_token',
        service: 'wharf',
        client_id: 'test',
        refresh_token: body.refresh_token,
        scope: 'repository:alice/app:pull',
      }).toString(),
    });
    expect(refreshed.statusCode).toBe(200);
    expect(decodeJwt(refreshed.json().access_token).sub).toBe('alice');
    const forged = await inject({
      method: 'POST',
      url: '/v2/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: body.access_token,
      }).toString(),
    });
    expect(forged.statusCode).toBe(401);
  });

  it('returns a refresh_token on GET with offline_token=true', async () => {
    const response = await token(basic('alice', 'alice-password'), [], '&offline_token=true');
    expect(response.json().refresh_token).toBeTruthy();
  });

  it('rejects a tampered or foreign token with 401 invalid_token', async () => {
    const good = (await token(basic('alice', 'alice-password'), ['repository:alice/app:pull'])).json()
      .token as string;
    const tampered = `${good.slice(0, -4)}AAAA`;
    const response = await inject({
      method: 'GET',
      url: '/v2/alice/app/tags/list',
      headers: { authorization: `Bearer ${tampered}` },
    });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('needs the catalog scope for /v2/_catalog and lists only what the caller may read', async () => {
    expect((await inject({ method: 'GET', url: '/v2/_catalog' })).headers['www-authenticate']).toContain(
      'scope="registry:catalog:*"',
    );
    // A token request creates nothing; the first push does.
    const bobPush = (await token(basic('bob', 'bob-password-1'), ['repository:bob/secret:push'])).json()
      .token;
    const bobCatalogBefore = (await token(basic('bob', 'bob-password-1'), ['registry:catalog:*'])).json()
      .token;
    const before = await inject({
      method: 'GET',
      url: '/v2/_catalog',
      headers: { authorization: `Bearer ${bobCatalogBefore}` },
    });
    expect(before.json().repositories).not.toContain('bob/secret');
    const blob = Buffer.from('catalog test');
    const pushed = await inject({
      method: 'POST',
      url: `/v2/bob/secret/blobs/uploads/?digest=sha256:${(await import('node:crypto')).createHash('sha256').update(blob).digest('hex')}`,
      headers: { authorization: `Bearer ${bobPush}`, 'content-type': 'application/octet-stream' },
      payload: blob,
    });
    expect(pushed.statusCode).toBe(201);
    const bobCatalog = (await token(basic('bob', 'bob-password-1'), ['registry:catalog:*'])).json().token;
    const list = await inject({
      method: 'GET',
      url: '/v2/_catalog',
      headers: { authorization: `Bearer ${bobCatalog}` },
    });
    expect(list.statusCode).toBe(200);
    expect(list.json().repositories).toContain('bob/secret');
    expect(list.json().repositories).toContain('alice/public');
    expect(list.json().repositories).not.toContain('alice/app');
    const root = await inject({
      method: 'GET',
      url: '/v2/_catalog?n=1',
      headers: {
        authorization: `Bearer ${(await token(basic('bob', 'bob-password-1'), ['registry:catalog:*'])).json().token}`,
      },
    });
    expect(root.json().repositories).toHaveLength(1);
    expect(root.headers.link).toMatch(/<\/v2\/_catalog\?n=1&last=[^>]+>; rel="next"/);
  });

  it('parses scopes whose repository name carries a host:port', () => {
    expect(parseScope('repository:localhost:5000/team/app:pull,push')).toEqual({
      type: 'repository',
      name: 'localhost:5000/team/app',
      actions: ['pull', 'push'],
    });
    expect(parseScope('repository(plugin):samalba/app:pull')).toEqual({
      type: 'repository',
      name: 'samalba/app',
      actions: ['pull'],
    });
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    expect(parseScope('nonsense')).toBeNull();
  });
});
