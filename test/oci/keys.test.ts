import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../server/identity/principal.ts';
import { SigningKeys } from '../../server/registry/oci/token/keys.ts';
import { TokenService } from '../../server/registry/oci/token/tokens.ts';
import { FsObjectStore } from '../../server/store/fs-store.ts';

const ALICE: Principal = {
  kind: 'user',
  name: 'alice',
  groups: [],
  scopes: null,
  via: 'password',
  admin: false,
};

describe('token signing keys', () => {
  let dir: string;
  let store: FsObjectStore;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-keys-'));
    store = await FsObjectStore.open(dir);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('shares keys between replicas and keeps a retired key published while its tokens live', async () => {
    const options = { issuer: 'wharf', service: 'wharf', ttlSeconds: 300, refreshTtlSeconds: 600 };
    const replicaA = new SigningKeys(store, { rotationHours: 1, retainSeconds: 600 });
    await replicaA.load();
    const replicaB = new SigningKeys(store, { rotationHours: 1, retainSeconds: 600 });
    await replicaB.load();
    expect(replicaB.jwks()).toEqual(replicaA.jwks());
    const oldToken = (await new TokenService(replicaA, options).issue({ ...ALICE }, [])).token;
    const oldKid = decodeProtectedHeader(oldToken).kid;

    // Rotation is due (rotationHours ~ 0): a new key signs, the old one stays in the JWKS.
    const rotating = new SigningKeys(store, { rotationHours: 1e-9, retainSeconds: 600 });
    await rotating.load();
    const kids = rotating.jwks().keys.map((key) => key.kid);
    expect(kids).toHaveLength(2);
    expect(kids[0]).toBe(oldKid);
    const newToken = (await new TokenService(rotating, options).issue({ ...ALICE }, [])).token;
    expect(decodeProtectedHeader(newToken).kid).not.toBe(oldKid);

    // Replica B has never seen the new kid: it reloads (at most once a second, so unknown kids
    // cannot hammer the store) and accepts the token; the old one too.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const verifierB = new TokenService(replicaB, options);
    expect((await verifierB.verify(newToken))?.principal.name).toBe('alice');
    expect((await verifierB.verify(oldToken))?.principal.name).toBe('alice');

    // Once nothing the old key signed can still be valid, the next rotation drops it.
    const later = new SigningKeys(store, { rotationHours: 1e-9, retainSeconds: 0 });
    await later.load();
    expect(later.jwks().keys.map((key) => key.kid)).not.toContain(oldKid);
  });
});
