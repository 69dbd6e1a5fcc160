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
import type { Logger } from 'pino';
import type { TokenSealer } from '../../../auth/openid/token-sealer.ts';
import { ConfigError } from '../../../config/load.ts';
import { readJson, updateJson } from '../../../store/json-doc.ts';
import type { ObjectStore } from '../../../store/object-store.ts';
import { keys } from '../names.ts';

interface StoredKey {
  kid: string;
  /**
   * The private JWK sealed with `registry.oci.signingKeyEncryptionKey` (AES-256-GCM, the kid bound
   * in). Only the current key keeps it: a retired key never signs again, so its private half goes.
   */
  sealedPrivateJwk?: string;
  /** The private JWK in clear: only where unsealed keys are allowed (the fs store), or before migration. */
  privateJwk?: JWK;
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
  /** Seals generated keys in the store; without it they are refused unless `allowUnsealed`. */
  sealer?: TokenSealer;
  /**
   * Whether a generated key may sit in the store in clear when no sealer is configured: only where
   * reading the store means reading the configuration too (the fs store; docs/oci.md).
   */
  allowUnsealed: boolean;
  rotationHours: number;
  /** How long a retired key must stay published: the longest lifetime of a token it signed. */
  retainSeconds: number;
  logger?: Logger;
}

const SEALING_SETTING =
  'registry.oci.signingKeyEncryptionKey (WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY, or …File / WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY_FILE)';

/**
 * ES256 signing keys, shared by every replica through the store. `kid` is the RFC 7638 thumbprint
 * (what distribution v3 and go-jose expect). Rotation adds a key; retired keys stay in the JWKS
 * until tokens they signed have expired.
 *
 * Whoever holds the private key forges any registry token, so it is never readable from the store
 * alone: a configured key file keeps it out of the store entirely; a generated key is sealed with a
 * key from the configuration; an unsealed key is allowed only by `allowUnsealed`. A key stored in
 * clear by an earlier version is sealed at the first start that has a sealing key.
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
    if (document?.keys.some((key) => key.privateJwk)) {
      if (this.options.sealer) document = await this.sealStoredKeys(this.options.sealer);
      else this.refuseUnsealed('keep using the signing key the store holds unencrypted');
    }
    const newest = document?.keys.at(-1);
    // A replica with another sealing key must stop here, not rotate in a key the others cannot open.
    if (newest?.sealedPrivateJwk) this.privateJwk(newest);
    const rotationDue =
      !newest || Date.now() - Date.parse(newest.createdAt) > this.options.rotationHours * 3_600_000;
    if (rotationDue) document = await this.rotate();
    await this.adopt(document as KeyDocument);
  }

  /** Adds a fresh key (unless another replica just did) and drops keys no token can still use. */
  async rotate(): Promise<KeyDocument> {
    this.refuseUnsealed('generate a signing key');
    const stored = this.stored(await newKey());
    const result = await updateJson<KeyDocument>(this.store, keys.signingKeys, (current) => {
      const now = Date.now();
      const existing = current?.keys ?? [];
      const newest = existing.at(-1);
      if (newest && now - Date.parse(newest.createdAt) < this.options.rotationHours * 3_600_000)
        return undefined;
      const kept = existing
        .map((key) => (key.retiredAt ? key : { ...publicHalf(key), retiredAt: new Date(now).toISOString() }))
        .filter((key) => now - Date.parse(key.retiredAt as string) < this.options.retainSeconds * 1000);
      return { keys: [...kept, stored] };
    });
    if (!this.options.sealer && result?.keys.at(-1)?.kid === stored.kid)
      this.options.logger?.warn(
        { key: keys.signingKeys },
        `generated a registry token signing key and stored it unencrypted (allowed with the fs store only); set ${SEALING_SETTING} to seal it`,
      );
    return result as KeyDocument;
  }

  /**
   * Migration: private keys an earlier version stored in clear are sealed (the current one) or
   * dropped (retired ones, which never sign again). A conditional write, so replicas starting
   * together agree.
   */
  private async sealStoredKeys(sealer: TokenSealer): Promise<KeyDocument> {
    const result = await updateJson<KeyDocument>(this.store, keys.signingKeys, (current) => {
      if (!current?.keys.some((key) => key.privateJwk)) return undefined;
      const newest = current.keys.at(-1);
      return {
        keys: current.keys.map((key) => {
          if (!key.privateJwk) return key;
          if (key !== newest || key.retiredAt) return publicHalf(key);
          return { ...publicHalf(key), sealedPrivateJwk: sealJwk(sealer, key.kid, key.privateJwk) };
        }),
      };
    });
    this.options.logger?.info(
      { key: keys.signingKeys },
      'sealed the registry token signing keys in the store',
    );
    return result as KeyDocument;
  }

  /** How a new key goes into the store: sealed when a sealer is configured, else in clear. */
  private stored(key: StoredKey & { privateJwk: JWK }): StoredKey {
    const { sealer } = this.options;
    if (!sealer) return key;
    return { ...publicHalf(key), sealedPrivateJwk: sealJwk(sealer, key.kid, key.privateJwk) };
  }

  private refuseUnsealed(action: string): void {
    if (this.options.sealer || this.options.allowUnsealed) return;
    throw new ConfigError(
      `cannot ${action}: anyone who can read the store could then sign registry tokens. Set ${SEALING_SETTING} to 32 random bytes (openssl rand -base64 32) so that generated keys are stored encrypted, or provide the key as registry.oci.signingKeyFile (WHARF_OCI_SIGNING_KEY_FILE)`,
    );
  }

  private async adopt(document: KeyDocument): Promise<void> {
    const newest = document.keys.at(-1);
    if (!newest) throw new Error('no signing key');
    this.current = { kid: newest.kid, key: (await importJWK(this.privateJwk(newest), 'ES256')) as CryptoKey };
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

  /** The private half of the current key, opened with the sealer when it is sealed. */
  private privateJwk(key: StoredKey): JWK {
    if (key.privateJwk) return key.privateJwk;
    if (!key.sealedPrivateJwk) throw new Error(`signing key ${key.kid} has no private half in the store`);
    if (!this.options.sealer)
      throw new ConfigError(
        `the registry token signing key in the store (${keys.signingKeys}) is encrypted: set ${SEALING_SETTING} to the key it was sealed with`,
      );
    const opened = this.options.sealer.open(sealingContext(key.kid), key.sealedPrivateJwk);
    if (opened === null)
      throw new ConfigError(
        `the registry token signing key in the store (${keys.signingKeys}) does not open with the configured ${SEALING_SETTING}: it was sealed with another key (every replica needs the same one)`,
      );
    return JSON.parse(opened) as JWK;
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

async function newKey(): Promise<StoredKey & { privateJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, privateJwk, publicJwk, createdAt: new Date().toISOString() };
}

/** A stored key without its private half, clear or sealed. */
function publicHalf({ privateJwk: _clear, sealedPrivateJwk: _sealed, ...rest }: StoredKey): StoredKey {
  return rest;
}

/** The associated data of a sealed key: a sealed private key moved onto another kid does not open. */
function sealingContext(kid: string): string {
  return `oci-signing-key:${kid}`;
}

function sealJwk(sealer: TokenSealer, kid: string, jwk: JWK): string {
  return sealer.seal(sealingContext(kid), JSON.stringify(jwk));
}
