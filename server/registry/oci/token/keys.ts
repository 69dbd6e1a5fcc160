import { readFileSync } from 'node:fs';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type JWK,
} from 'jose';
import { readJson, updateJson } from '../../../store/json-doc.ts';
import type { ObjectStore } from '../../../store/object-store.ts';
import { keys } from '../names.ts';

interface StoredKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
  createdAt: string;
  /** Set when a newer key took over; the key stays published until its last token expired. */
  retiredAt?: string;
}

interface KeyDocument {
  keys: StoredKey[];
}

export interface SigningKeyOptions {
  /** PEM (PKCS#8, P-256) mounted by the operator; when absent, keys are generated into the store. */
  signingKeyFile?: string;
  rotationHours: number;
  /** How long a retired key must stay published: the longest lifetime of a token it signed. */
  retainSeconds: number;
}

/**
 * ES256 signing keys, shared by every replica through the store. `kid` is the RFC 7638 thumbprint
 * (what distribution v3 and go-jose expect). Rotation adds a key; retired keys stay in the JWKS
 * until tokens they signed have expired.
 */
export class SigningKeys {
  private readonly store: ObjectStore;
  private readonly options: SigningKeyOptions;
  private current: { kid: string; key: CryptoKey } | null = null;
  private readonly verifiers = new Map<string, CryptoKey>();
  private published: JWK[] = [];
  private loadedAt = 0;

  constructor(store: ObjectStore, options: SigningKeyOptions) {
    this.store = store;
    this.options = options;
  }

  async load(): Promise<void> {
    if (this.options.signingKeyFile) {
      const pem = readFileSync(this.options.signingKeyFile, 'utf8');
      const key = await importPKCS8(pem, 'ES256', { extractable: true });
      const jwk = await exportJWK(key);
      const publicJwk: JWK = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
      const kid = await calculateJwkThumbprint(publicJwk);
      this.current = { kid, key };
      this.verifiers.set(kid, (await importJWK({ ...publicJwk, alg: 'ES256' }, 'ES256')) as CryptoKey);
      this.published = [{ ...publicJwk, kid, use: 'sig', alg: 'ES256' }];
      this.loadedAt = Date.now();
      return;
    }
    let document = (await readJson<KeyDocument>(this.store, keys.signingKeys))?.value ?? null;
    const newest = document?.keys.at(-1);
    const rotationDue =
      !newest || Date.now() - Date.parse(newest.createdAt) > this.options.rotationHours * 3_600_000;
    if (rotationDue) document = await this.rotate();
    await this.adopt(document as KeyDocument);
  }

  /** Adds a fresh key (unless another replica just did) and drops keys no token can still use. */
  async rotate(): Promise<KeyDocument> {
    const fresh = await newKey();
    const result = await updateJson<KeyDocument>(this.store, keys.signingKeys, (current) => {
      const now = Date.now();
      const existing = current?.keys ?? [];
      const newest = existing.at(-1);
      if (newest && now - Date.parse(newest.createdAt) < this.options.rotationHours * 3_600_000)
        return undefined;
      const kept = existing
        .map((key) => (key.retiredAt ? key : { ...key, retiredAt: new Date(now).toISOString() }))
        .filter((key) => now - Date.parse(key.retiredAt as string) < this.options.retainSeconds * 1000);
      return { keys: [...kept, fresh] };
    });
    return result as KeyDocument;
  }

  private async adopt(document: KeyDocument): Promise<void> {
    const newest = document.keys.at(-1);
    if (!newest) throw new Error('no signing key');
    this.current = { kid: newest.kid, key: (await importJWK(newest.privateJwk, 'ES256')) as CryptoKey };
    this.verifiers.clear();
    for (const key of document.keys) {
      this.verifiers.set(
        key.kid,
        (await importJWK({ ...key.publicJwk, alg: 'ES256' }, 'ES256')) as CryptoKey,
      );
    }
    this.published = document.keys.map((key) => ({
      ...key.publicJwk,
      kid: key.kid,
      use: 'sig',
      alg: 'ES256',
    }));
    this.loadedAt = Date.now();
  }

  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    // Pick up a rotation done by another replica, or rotate ourselves, at most once a minute.
    if (Date.now() - this.loadedAt > 60_000) await this.load();
    if (!this.current) await this.load();
    return this.current as { kid: string; key: CryptoKey };
  }

  /** The public key for a kid; an unknown kid triggers one reload (a replica may have rotated). */
  async verifier(kid: string | undefined): Promise<CryptoKey | null> {
    if (!kid) return null;
    const known = this.verifiers.get(kid);
    if (known) return known;
    if (Date.now() - this.loadedAt > 1000) await this.load();
    return this.verifiers.get(kid) ?? null;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.published };
  }
}

async function newKey(): Promise<StoredKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateJwk, publicJwk, createdAt: new Date().toISOString() };
}
