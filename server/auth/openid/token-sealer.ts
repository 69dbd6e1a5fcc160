import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '../../config/load.ts';

/**
 * Keeps a secret encrypted at rest (AES-256-GCM) while the store alone (a leaked bucket) reveals
 * nothing: the key lives in configuration (a Kubernetes Secret), not in the store. Used for a user's
 * Ktra token, so that `/me` can show the existing token again as Ktra does, and for the registry's
 * generated JWT signing keys. What the secret belongs to (an account name, a key id) is bound in as
 * associated data, so a sealed value copied onto another owner does not open.
 */
export class TokenSealer {
  private readonly key: Buffer;

  /** `setting` names the configuration setting the key came from, for the error message. */
  constructor(encodedKey: string, setting = 'openid.tokenEncryptionKey') {
    this.key = decodeKey(encodedKey, setting);
  }

  seal(account: string, token: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(account));
    const sealed = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
    return [
      'v1',
      iv.toString('base64url'),
      sealed.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
    ].join('.');
  }

  /** The token, or null when the blob was sealed with another key or for another account. */
  open(account: string, blob: string): string | null {
    const [version, iv, sealed, tag] = blob.split('.');
    if (version !== 'v1' || !iv || !sealed || !tag) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(account));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(sealed, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      return null;
    }
  }
}

function decodeKey(encoded: string, setting: string): Buffer {
  const text = encoded.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32)
    throw new ConfigError(
      `configuration setting "${setting}" must be 32 bytes in base64 or hex (openssl rand -base64 32)`,
    );
  return key;
}
