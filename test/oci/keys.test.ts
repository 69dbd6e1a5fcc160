import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenSealer } from '../../server/auth/openid/token-sealer.ts';
import { ConfigError } from '../../server/config/load.ts';
import type { Principal } from '../../server/identity/principal.ts';
import { keys } from '../../server/registry/oci/names.ts';
import { type SigningKeyOptions, SigningKeys } from '../../server/registry/oci/token/keys.ts';
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
const TOKENS = { issuer: 'wharf', service: 'wharf', ttlSeconds: 300, refreshTtlSeconds: 600 };

interface StoredKeyDocument {
  keys: { kid: string; privateJwk?: JWK; sealedPrivateJwk?: string; publicJwk: JWK; retiredAt?: string }[];
}

describe('token signing keys', () => {
  let dir: string;
  let store: FsObjectStore;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-keys-'));
  });
  beforeEach(async () => {
    // A fresh store per test: the key document is the subject.
    store = await FsObjectStore.open(await mkdtemp(path.join(dir, 'store-')));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const signingKeys = (options: Partial<SigningKeyOptions> = {}) =>
    new SigningKeys(store, { rotationHours: 1, retainSeconds: 600, allowUnsealed: false, ...options });
  const sealer = () =>
    new TokenSealer(randomBytes(32).toString('base64'), 'registry.oci.signingKeyEncryptionKey');
  const rawDocument = async () => {
    const object = await store.get(keys.signingKeys);
    return object ? await text(object.body) : null;
  };
  const storedDocument = async () => JSON.parse((await rawDocument()) as string) as StoredKeyDocument;
  /** The private scalar `d` of the current key, read back through the sealer. */
  const privateScalar = async (seal: TokenSealer) => {
    const current = (await storedDocument()).keys.at(-1)!;
    return (JSON.parse(seal.open(`oci-signing-key:${current.kid}`, current.sealedPrivateJwk!)!) as JWK).d!;
  };

  it('verifies a token once and answers from the cache until it expires, a tampered one never', async () => {
    const replica = signingKeys({ allowUnsealed: true });
    await replica.load();
    const tokens = new TokenService(replica, { ...TOKENS, ttlSeconds: 1 });
    const { token } = await tokens.issue({ ...ALICE }, [
      { type: 'repository', name: 'alice/app', actions: ['pull'] },
    ]);
    let lookups = 0;
    const verifier = replica.verifier.bind(replica);
    replica.verifier = (kid) => {
      lookups++;
      return verifier(kid);
    };
    for (let i = 0; i < 5; i++) expect((await tokens.verify(token))?.principal.name).toBe('alice');
    expect(lookups).toBe(1);
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${payload}.${signature!.slice(0, -4)}AAAA`;
    expect(await tokens.verify(forged)).toBeNull();
    // exp has a one-second resolution, plus jose's 30 s clock tolerance for the fresh check: the
    // cache itself must stop at exp.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    lookups = 0;
    await tokens.verify(token);
    expect(lookups).toBe(1);
  });

  it('shares keys between replicas and keeps a retired key published while its tokens live', async () => {
    const replicaA = signingKeys({ allowUnsealed: true });
    await replicaA.load();
    const replicaB = signingKeys({ allowUnsealed: true });
    await replicaB.load();
    expect(replicaB.jwks()).toEqual(replicaA.jwks());
    const oldToken = (await new TokenService(replicaA, TOKENS).issue({ ...ALICE }, [])).token;
    const oldKid = decodeProtectedHeader(oldToken).kid;

    // Rotation is due (rotationHours ~ 0): a new key signs, the old one stays in the JWKS.
    const rotating = signingKeys({ allowUnsealed: true, rotationHours: 1e-9 });
    await rotating.load();
    const kids = rotating.jwks().keys.map((key) => key.kid);
    expect(kids).toHaveLength(2);
    expect(kids[0]).toBe(oldKid);
    const newToken = (await new TokenService(rotating, TOKENS).issue({ ...ALICE }, [])).token;
    expect(decodeProtectedHeader(newToken).kid).not.toBe(oldKid);

    // Replica B has never seen the new kid: it reloads (at most once a second, so unknown kids
    // cannot hammer the store) and accepts the token; the old one too.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const verifierB = new TokenService(replicaB, TOKENS);
    expect((await verifierB.verify(newToken))?.principal.name).toBe('alice');
    expect((await verifierB.verify(oldToken))?.principal.name).toBe('alice');

    // Once nothing the old key signed can still be valid, the next rotation drops it.
    const later = signingKeys({ allowUnsealed: true, rotationHours: 1e-9, retainSeconds: 0 });
    await later.load();
    expect(later.jwks().keys.map((key) => key.kid)).not.toContain(oldKid);
  });

  it('keeps no private key material in clear in the store when a sealing key is configured', async () => {
    const seal = sealer();
    const replica = signingKeys({ sealer: seal });
    await replica.load();
    const token = (await new TokenService(replica, TOKENS).issue({ ...ALICE }, [])).token;
    const stored = await storedDocument();
    expect(stored.keys).toHaveLength(1);
    expect(stored.keys[0]).not.toHaveProperty('privateJwk');
    expect(stored.keys[0]!.publicJwk).not.toHaveProperty('d');
    expect(stored.keys[0]!.sealedPrivateJwk).toMatch(/^v1\./);
    // The private scalar (what forging a token needs) appears nowhere in the stored bytes.
    const d = await privateScalar(seal);
    expect(d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await rawDocument()).not.toContain(d);
    expect((await new TokenService(replica, TOKENS).verify(token))?.principal.name).toBe('alice');
  });

  it('two replicas with the same sealing key share the sealed key', async () => {
    const seal = sealer();
    const replicaA = signingKeys({ sealer: seal });
    await replicaA.load();
    const replicaB = signingKeys({ sealer: seal });
    await replicaB.load();
    expect(replicaB.jwks()).toEqual(replicaA.jwks());
    expect(replicaA.jwks().keys).toHaveLength(1);
    const signedByA = (await new TokenService(replicaA, TOKENS).issue({ ...ALICE }, [])).token;
    const signedByB = (await new TokenService(replicaB, TOKENS).issue({ ...ALICE }, [])).token;
    expect(decodeProtectedHeader(signedByB).kid).toBe(decodeProtectedHeader(signedByA).kid);
    expect((await new TokenService(replicaB, TOKENS).verify(signedByA))?.principal.name).toBe('alice');
    expect((await new TokenService(replicaA, TOKENS).verify(signedByB))?.principal.name).toBe('alice');
  });

  it('rotates sealed keys: the new one sealed, the retired one public only, its tokens still valid', async () => {
    const seal = sealer();
    const first = signingKeys({ sealer: seal });
    await first.load();
    const oldToken = (await new TokenService(first, TOKENS).issue({ ...ALICE }, [])).token;
    const rotating = signingKeys({ sealer: seal, rotationHours: 1e-9 });
    await rotating.load();
    const stored = await storedDocument();
    expect(stored.keys).toHaveLength(2);
    // A retired key never signs again: its private half is gone, sealed or not.
    expect(stored.keys[0]).not.toHaveProperty('sealedPrivateJwk');
    expect(stored.keys[0]).not.toHaveProperty('privateJwk');
    expect(stored.keys[0]!.retiredAt).toBeTruthy();
    expect(stored.keys[1]!.sealedPrivateJwk).toMatch(/^v1\./);
    expect(await rawDocument()).not.toContain(await privateScalar(seal));
    const service = new TokenService(rotating, TOKENS);
    const newToken = (await service.issue({ ...ALICE }, [])).token;
    expect(decodeProtectedHeader(newToken).kid).toBe(stored.keys[1]!.kid);
    expect((await service.verify(oldToken))?.principal.name).toBe('alice');
    expect((await service.verify(newToken))?.principal.name).toBe('alice');
  });

  it('refuses to generate a key without a sealing key where unsealed keys are not allowed', async () => {
    const load = signingKeys().load();
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toThrow(
      /cannot generate a signing key: anyone who can read the store could then sign registry tokens\. Set registry\.oci\.signingKeyEncryptionKey/,
    );
    expect(await rawDocument()).toBeNull();
  });

  it('seals a key an earlier version kept in clear, at the first start with a sealing key', async () => {
    // What an earlier version (or the fs store without a sealing key) left: clear private keys,
    // one of them retired.
    await signingKeys({ allowUnsealed: true }).load();
    const legacy = signingKeys({ allowUnsealed: true, rotationHours: 1e-9 });
    await legacy.load();
    const before = await storedDocument();
    expect(before.keys.map((key) => Boolean(key.privateJwk))).toEqual([false, true]);
    const clearScalar = before.keys[1]!.privateJwk!.d!;
    const oldToken = (await new TokenService(legacy, TOKENS).issue({ ...ALICE }, [])).token;

    // Without a sealing key, a store that must not hold clear keys refuses to go on using it.
    await expect(signingKeys().load()).rejects.toThrow(
      /cannot keep using the signing key the store holds unencrypted/,
    );

    const seal = sealer();
    const migrated = signingKeys({ sealer: seal });
    await migrated.load();
    const after = await storedDocument();
    expect(after.keys.map((key) => key.kid)).toEqual(before.keys.map((key) => key.kid)); // no rotation
    expect(after.keys.every((key) => !key.privateJwk)).toBe(true);
    expect(after.keys[1]!.sealedPrivateJwk).toMatch(/^v1\./);
    expect(await rawDocument()).not.toContain(clearScalar);
    expect(await privateScalar(seal)).toBe(clearScalar); // the same key, now sealed
    expect((await new TokenService(migrated, TOKENS).verify(oldToken))?.principal.name).toBe('alice');
  });

  it('fails with a clear message when the sealing key is not the one the keys were sealed with', async () => {
    await signingKeys({ sealer: sealer() }).load();
    const before = await rawDocument();
    const message =
      /does not open with the configured registry\.oci\.signingKeyEncryptionKey .*: it was sealed with another key/;
    await expect(signingKeys({ sealer: sealer() }).load()).rejects.toThrow(message);
    // Even with a rotation due, it must not add a key the other replicas could not open.
    await expect(signingKeys({ sealer: sealer(), rotationHours: 1e-9 }).load()).rejects.toThrow(message);
    // Nor run on unsealed keys (the fs store) when the store's keys are sealed.
    await expect(signingKeys({ allowUnsealed: true, rotationHours: 1e-9 }).load()).rejects.toThrow(
      /is encrypted: set registry\.oci\.signingKeyEncryptionKey/,
    );
    expect(await rawDocument()).toBe(before);
  });

  it('binds a sealed key to its kid: moved onto another entry, it does not open', async () => {
    const seal = sealer();
    await signingKeys({ sealer: seal }).load();
    await signingKeys({ sealer: seal, rotationHours: 1e-9 }).load();
    const document = await storedDocument();
    // Someone with write access makes the retired key current again, with the current sealed half.
    const [retired, current] = document.keys;
    const swapped = {
      keys: [current, { ...retired, retiredAt: undefined, sealedPrivateJwk: current!.sealedPrivateJwk }],
    };
    await store.put(keys.signingKeys, JSON.stringify(swapped));
    await expect(signingKeys({ sealer: seal }).load()).rejects.toThrow(/does not open/);
  });
});
