import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginState, type PendingLogin, sha256 } from '../../server/auth/openid/login-state.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';

describe('pending logins and sessions in the store', () => {
  let dir: string;
  let stores: FsObjectStore[];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-oidc-state-'));
    stores = [await FsObjectStore.open(dir), await FsObjectStore.open(dir)];
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const pending = (browser: string): PendingLogin => ({
    provider: 'corp',
    purpose: 'me',
    redirectUri: 'https://registry.example/ktra/api/v1/openid/me',
    codeVerifier: 'verifier',
    nonce: 'nonce',
    browser: sha256(browser),
    expiresAt: Date.now() + 60_000,
    afterLogin: { kind: 'token' },
  });

  it('lets exactly one of many concurrent callbacks on two replicas claim a state', async () => {
    const [a, b] = stores.map((store) => new LoginState(store)) as [LoginState, LoginState];
    const state = 's'.repeat(43);
    await a.startLogin(state, pending('browser-cookie'));
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).claimLogin(state, 'browser-cookie')),
    );
    expect(claims.filter((claim) => typeof claim === 'object')).toHaveLength(1);
    expect(claims.filter((claim) => claim === 'replayed')).toHaveLength(7);
  });

  it('keys objects by SHA-256, so the store holds no usable state or session id', async () => {
    const state = new LoginState(stores[0]!);
    const value = 't'.repeat(43);
    await state.startLogin(value, pending('cookie'));
    const session = await state.createSession({
      account: 'alice',
      username: 'corp:alice',
      provider: 'corp',
      groups: [],
      expiresAt: Date.now() + 60_000,
    });
    const keys = (await stores[0]!.list({ prefix: 'openid/' })).objects.map((object) => object.key);
    expect(keys.join()).not.toContain(value);
    expect(keys.join()).not.toContain(session);
    expect(await new LoginState(stores[1]!).session(session)).toMatchObject({ account: 'alice' });
  });

  it('sweeps pending logins and sessions past their lifetime', async () => {
    const state = new LoginState(stores[0]!);
    const session = await state.createSession({
      account: 'bob',
      username: 'corp:bob',
      provider: 'corp',
      groups: [],
      expiresAt: Date.now() + 60_000,
    });
    await state.sweep(-61, 3600); // every pending login is past a lifetime of -61 s
    expect((await stores[0]!.list({ prefix: 'openid/pending/' })).objects).toHaveLength(0);
    expect(await state.session(session)).not.toBeNull();
    await state.sweep(3600, -61);
    expect(await state.session(session)).toBeNull();
  });
});
