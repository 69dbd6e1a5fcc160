import { createHash, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { CredentialRef, Principal } from '../../../identity/principal.ts';
import type { SigningKeys } from './keys.ts';

/** One `access` entry of a Docker registry JWT. */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** What the registry learns from a verified token. */
export interface VerifiedToken {
  principal: Principal;
  access: Access[];
  expiresAt: number;
}

/**
 * Who the token is for, so the registry can re-check permissions (mounts, catalog) without a call,
 * and check the credential it came from again (revocation): kind, groups, admin, the token's
 * scopes, the credential reference.
 */
interface PrincipalClaim {
  k: Principal['kind'];
  g: string[];
  a: boolean;
  s?: string[] | null;
  c?: CredentialRef;
}

export interface TokenOptions {
  issuer: string;
  service: string;
  ttlSeconds: number;
  refreshTtlSeconds: number;
}

const MAX_CACHED = 10_000;

/**
 * Issues and verifies registry tokens. Verification results are cached by the token's SHA-256
 * until the token expires (at most MAX_CACHED, expired ones dropped first, then the least recently
 * used), so the hot path (every manifest or blob GET) costs a hash and a Map lookup instead of an
 * ECDSA verification, and the cache holds no bearer token itself.
 */
export class TokenService {
  private readonly keys: SigningKeys;
  readonly options: TokenOptions;
  private readonly cache = new Map<string, VerifiedToken>();

  constructor(keys: SigningKeys, options: TokenOptions) {
    this.keys = keys;
    this.options = options;
  }

  async issue(
    principal: Principal,
    access: Access[],
  ): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    const { kid, key } = await this.keys.signingKey();
    const issuedAt = new Date();
    const now = Math.floor(issuedAt.getTime() / 1000);
    const token = await new SignJWT({ access, wharf: principalClaim(principal) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(this.options.issuer)
      .setSubject(principal.name)
      .setAudience(this.options.service)
      .setIssuedAt(now)
      .setNotBefore(now - 1)
      .setExpirationTime(now + this.options.ttlSeconds)
      .setJti(randomUUID())
      .sign(key);
    return { token, expiresIn: this.options.ttlSeconds, issuedAt };
  }

  /** A long-lived token for `offline_token=true`, good only at the token endpoint. */
  async issueRefresh(principal: Principal): Promise<string> {
    const { kid, key } = await this.keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ wharf: principalClaim(principal) })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
      .setIssuer(this.options.issuer)
      .setSubject(principal.name)
      .setAudience(`${this.options.service}#refresh`)
      .setIssuedAt(now)
      .setExpirationTime(now + this.options.refreshTtlSeconds)
      .setJti(randomUUID())
      .sign(key);
  }

  async verify(token: string): Promise<VerifiedToken | null> {
    const key = createHash('sha256').update(token).digest('base64');
    const cached = this.cache.get(key);
    if (cached) {
      this.cache.delete(key);
      if (cached.expiresAt > Date.now()) {
        this.cache.set(key, cached); // most recently used last
        return cached;
      }
    }
    const payload = await this.verifyJwt(token, this.options.service);
    if (!payload) return null;
    const verified: VerifiedToken = {
      principal: principalFrom(payload.sub, payload.wharf),
      access: Array.isArray(payload.access) ? (payload.access as Access[]) : [],
      expiresAt: (payload.exp as number) * 1000,
    };
    if (this.cache.size >= MAX_CACHED) this.evict();
    this.cache.set(key, verified);
    return verified;
  }

  /** Drops expired results; when none had expired, the least recently used tenth. */
  private evict(): void {
    const now = Date.now();
    for (const [key, entry] of this.cache) if (entry.expiresAt <= now) this.cache.delete(key);
    let excess = this.cache.size - Math.floor(MAX_CACHED * 0.9);
    for (const key of this.cache.keys()) {
      if (excess-- <= 0) break;
      this.cache.delete(key);
    }
  }

  async verifyRefresh(token: string): Promise<Principal | null> {
    const payload = await this.verifyJwt(token, `${this.options.service}#refresh`);
    return payload ? principalFrom(payload.sub, payload.wharf) : null;
  }

  private async verifyJwt(token: string, audience: string): Promise<Record<string, unknown> | null> {
    try {
      const header = decodeProtectedHeader(token);
      const key = await this.keys.verifier(header.kid);
      if (!key) return null;
      const { payload } = await jwtVerify(token, key, {
        issuer: this.options.issuer,
        audience,
        algorithms: ['ES256'],
        clockTolerance: 30,
      });
      return payload as Record<string, unknown>;
    } catch {
      return null;
    }
  }
}

function principalClaim(principal: Principal): PrincipalClaim {
  return {
    k: principal.kind,
    g: principal.groups,
    a: principal.admin,
    s: principal.scopes,
    ...(principal.credential ? { c: principal.credential } : {}),
  };
}

function principalFrom(sub: unknown, claim: unknown): Principal {
  const c = (claim ?? {}) as Partial<PrincipalClaim>;
  const kind = c.k === 'user' || c.k === 'robot' ? c.k : 'anonymous';
  const credential = kind !== 'anonymous' && isCredentialRef(c.c) ? c.c : undefined;
  return {
    kind,
    name: kind === 'anonymous' ? '' : String(sub ?? ''),
    groups: Array.isArray(c.g) ? c.g.map(String) : [],
    // A token we signed without scopes predates them: it may have come from a scoped token, so it
    // gets no unrestricted principal (its credential reference is missing too, and is refused).
    scopes: Array.isArray(c.s) ? c.s.map(String) : c.s === null ? null : [],
    via: 'token',
    admin: c.a === true,
    ...(credential ? { credential } : {}),
  };
}

function isCredentialRef(value: unknown): value is CredentialRef {
  if (typeof value !== 'object' || value === null) return false;
  const type = (value as { type?: unknown }).type;
  return type === 'password' || type === 'token' || type === 'account' || type === 'robot';
}
