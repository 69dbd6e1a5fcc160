import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

/**
 * Password and token hashing. Passwords go through bcrypt (slow on purpose), run by the password
 * pool (password-pool.ts) off the event loop; API tokens carry 256 random bits, so one SHA-256 is
 * enough and a token check never pays a bcrypt.
 */

export const TOKEN_PREFIX = 'wharf_';

/** `wharf_` + base64url of 32 random bytes: 256 bits, recognisable by secret scanners. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function looksLikeToken(secret: string): boolean {
  return secret.startsWith(TOKEN_PREFIX) && secret.length === TOKEN_PREFIX.length + 43;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * bcrypt only reads 72 bytes; longer passwords are pre-hashed so that every character counts.
 * Base64 of SHA-256 is 44 ASCII bytes and has no NUL, which bcrypt implementations choke on.
 */
export function bcryptInput(password: string): string {
  return Buffer.byteLength(password) > 72 ? createHash('sha256').update(password).digest('base64') : password;
}

/** The cost a bcrypt hash was made with. */
export function hashCost(hash: string): number {
  return bcrypt.getRounds(hash);
}

/** Compares two strings in time that depends only on their length. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
