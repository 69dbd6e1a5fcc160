import type { ServiceConfig } from '../config/types.ts';
import { readJson } from '../store/json-doc.ts';
import type { ObjectStore } from '../store/object-store.ts';
import { SERVICES_PREFIX, serviceKey } from './keys.ts';
import { PASSWORD_MIN_LENGTH, type UserNameRules } from './names.ts';
import type { PasswordPool } from './password-pool.ts';
import { constantTimeEqual, sha256Hex } from './secrets.ts';

/**
 * RestAuth services: the clients (registries, wikis, CI) that call the RestAuth API with HTTP
 * Basic. Two sources: the configuration (read-only, managed by the operator through Secrets) and
 * the store (managed through the admin API). A configured name wins over a stored one.
 *
 * Every operation needs a permission; a service with none can do nothing. Permissions may end in
 * `*`: `user*` grants every user operation, `*` everything.
 */
export const PERMISSIONS = [
  'users_list',
  'user_create',
  'user_exists',
  'user_verify_password',
  'user_change_password',
  'user_delete',
  'props_list',
  'prop_create',
  'prop_get',
  'prop_set',
  'prop_delete',
  'groups_list',
  'group_create',
  'group_exists',
  'group_delete',
  'group_users_list',
  'group_add_user',
  'group_user_in_group',
  'group_remove_user',
  'group_groups_list',
  'group_add_group',
  'group_remove_group',
  'token_verify',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The RestAuth revisions wharf speaks (docs/identity.md, "Two protocols"). */
export const PROTOCOLS = ['reference', 'restauth-0.6'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/**
 * How a service is answered and what it may create, beside its permissions. Every field has a
 * default (older records and configurations have none of them).
 */
export interface ServiceProfile {
  /** Which RestAuth revision it speaks: the reference document's or the released server's. */
  protocol: Protocol;
  /** Names it may give new users: registry names only, or RestAuth's (spaces, non-ASCII letters). */
  userNames: UserNameRules;
  /** Shortest password it may set (6 at least). */
  passwordMinLength: number;
  /** `shared`: the groups every registry sees; `own`: groups only this service sees (RestAuth 0.6). */
  groups: 'shared' | 'own';
}

export const DEFAULT_PROFILE: ServiceProfile = Object.freeze({
  protocol: 'reference',
  userNames: 'registry',
  passwordMinLength: PASSWORD_MIN_LENGTH,
  groups: 'shared',
});

/** The profile of a configuration entry, record or request body, defaults filled in. */
export function profileOf(partial: Partial<ServiceProfile>): ServiceProfile {
  return {
    protocol: partial.protocol ?? DEFAULT_PROFILE.protocol,
    userNames: partial.userNames ?? DEFAULT_PROFILE.userNames,
    passwordMinLength: partial.passwordMinLength ?? DEFAULT_PROFILE.passwordMinLength,
    groups: partial.groups ?? DEFAULT_PROFILE.groups,
  };
}

export interface ServiceRecord extends Partial<ServiceProfile> {
  name: string;
  /** bcrypt of the service's password. */
  passwordHash: string;
  permissions: string[];
  /** Its `X-Forwarded-For` is the end user's address for rate limits (absent in older records: false). */
  forwardsClientAddress?: boolean;
  createdAt: string;
}

export interface AuthenticatedService extends ServiceProfile {
  name: string;
  permissions: string[];
  /**
   * Whether the service is trusted to relay its end user's address in `X-Forwarded-For` (a
   * registry does). Otherwise the header is ignored and its users are told apart only by name.
   */
  forwardsClientAddress: boolean;
  source: 'config' | 'store';
}

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidServiceName(name: string): boolean {
  return SERVICE_NAME.test(name);
}

export function isValidPermission(permission: string): boolean {
  if (permission.endsWith('*')) return /^[a-z_]*\*$/.test(permission);
  return (PERMISSIONS as readonly string[]).includes(permission);
}

export function permits(permissions: readonly string[], operation: Permission): boolean {
  return permissions.some((granted) =>
    granted.endsWith('*') ? operation.startsWith(granted.slice(0, -1)) : granted === operation,
  );
}

export class ServiceRegistry {
  private readonly store: ObjectStore;
  private readonly bcryptCost: number;
  private readonly passwords: PasswordPool;
  /** Configured services, their passwords kept only as SHA-256 (compared in constant time). */
  private readonly configured = new Map<
    string,
    { passwordSha256: string; permissions: string[]; forwardsClientAddress: boolean; profile: ServiceProfile }
  >();
  /**
   * Stored services have bcrypt hashes; a verified (name, password) pair is remembered for
   * `cacheSeconds` so a busy service does not pay a bcrypt per request. Changing or deleting a
   * service clears this process's cache; other replicas follow within `cacheSeconds`.
   */
  private readonly verified = new Map<string, { service: AuthenticatedService; expiresAt: number }>();
  /** Wrong (name, password) pairs, refused without a bcrypt for `cacheSeconds`. */
  private readonly rejected = new Map<string, number>();
  private readonly cacheMs: number;

  constructor(
    store: ObjectStore,
    configured: ServiceConfig[],
    {
      bcryptCost,
      passwords,
      cacheSeconds,
    }: { bcryptCost: number; passwords: PasswordPool; cacheSeconds: number },
  ) {
    this.store = store;
    this.bcryptCost = bcryptCost;
    this.passwords = passwords;
    this.cacheMs = cacheSeconds * 1000;
    for (const service of configured) {
      this.configured.set(service.name, {
        passwordSha256: sha256Hex(service.password ?? ''),
        permissions: service.permissions,
        forwardsClientAddress: service.forwardsClientAddress ?? false,
        profile: profileOf(service),
      });
    }
  }

  isConfigured(name: string): boolean {
    return this.configured.has(name);
  }

  async authenticate(name: string, password: string): Promise<AuthenticatedService | null> {
    const configured = this.configured.get(name);
    if (configured) {
      return constantTimeEqual(sha256Hex(password), configured.passwordSha256)
        ? {
            name,
            permissions: configured.permissions,
            forwardsClientAddress: configured.forwardsClientAddress,
            ...configured.profile,
            source: 'config',
          }
        : null;
    }
    if (!isValidServiceName(name)) return null;
    const cacheKey = sha256Hex(`${name}\0${password}`);
    const cached = this.verified.get(cacheKey);
    if (cached && cached.expiresAt > Date.now()) return cached.service;
    // A client misconfigured with a stale password retries it in a loop: refuse it from memory.
    const rejectedUntil = this.rejected.get(cacheKey);
    if (rejectedUntil && rejectedUntil > Date.now()) return null;
    const record = (await readJson<ServiceRecord>(this.store, serviceKey(name)))?.value;
    // A full password queue throws PasswordQueueFullError here: not a refusal, nothing is cached.
    if (!record || !(await this.passwords.verify(password, record.passwordHash))) {
      if (this.rejected.size > 1000) this.rejected.clear();
      this.rejected.set(cacheKey, Date.now() + this.cacheMs);
      return null;
    }
    const service = describeStored(record);
    if (this.verified.size > 1000) this.verified.clear();
    this.verified.set(cacheKey, { service, expiresAt: Date.now() + this.cacheMs });
    return service;
  }

  async list(): Promise<AuthenticatedService[]> {
    const services: AuthenticatedService[] = [...this.configured].map(
      ([name, { permissions, forwardsClientAddress, profile }]) => ({
        name,
        permissions,
        forwardsClientAddress,
        ...profile,
        source: 'config',
      }),
    );
    let continuationToken: string | undefined;
    do {
      const page = await this.store.list({
        prefix: SERVICES_PREFIX,
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const object of page.objects) {
        const record = (await readJson<ServiceRecord>(this.store, object.key))?.value;
        if (record && !this.configured.has(record.name)) services.push(describeStored(record));
      }
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
    return services.sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<ServiceRecord | null> {
    if (!isValidServiceName(name)) return null;
    return (await readJson<ServiceRecord>(this.store, serviceKey(name)))?.value ?? null;
  }

  /** Creates or replaces a stored service. Returns whether it was created. */
  async put(
    name: string,
    password: string,
    permissions: string[],
    {
      forwardsClientAddress = false,
      ...profile
    }: { forwardsClientAddress?: boolean } & Partial<ServiceProfile> = {},
  ): Promise<boolean> {
    const existed = (await this.store.head(serviceKey(name))) !== null;
    const record: ServiceRecord = {
      name,
      passwordHash: await this.passwords.hash(password, this.bcryptCost),
      permissions,
      forwardsClientAddress,
      ...profileOf(profile),
      createdAt: new Date().toISOString(),
    };
    await this.store.put(serviceKey(name), JSON.stringify(record), { contentType: 'application/json' });
    this.verified.clear();
    this.rejected.clear();
    return !existed;
  }

  async delete(name: string): Promise<boolean> {
    if (!isValidServiceName(name) || !(await this.store.head(serviceKey(name)))) return false;
    await this.store.delete(serviceKey(name));
    this.verified.clear();
    return true;
  }
}

function describeStored(record: ServiceRecord): AuthenticatedService {
  return {
    name: record.name,
    permissions: record.permissions,
    forwardsClientAddress: record.forwardsClientAddress ?? false,
    ...profileOf(record),
    source: 'store',
  };
}
