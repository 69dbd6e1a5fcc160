import { readJson, updateJson } from '../store/json-doc.ts';
import { listAllObjects, type ObjectStore } from '../store/object-store.ts';
import { ownValue } from '../store/records.ts';
import { EMPTY_GROUPS, type GroupsDoc, groupNamed, groupsOfUser, membersOfGroup } from './groups.ts';
import {
  GROUPS_KEY,
  SERVICE_GROUPS_PREFIX,
  serviceGroupsKey,
  tokenKey,
  USERS_PREFIX,
  userKey,
  userNameOfKey,
} from './keys.ts';
import {
  isAcceptablePassword,
  isPossibleAccountName,
  isValidGroupName,
  isValidPersonName,
  isValidRobotName,
  normalizeName,
  PASSWORD_MIN_LENGTH,
  passwordProblem,
  type UserNameRules,
} from './names.ts';
import { type PasswordPool, PasswordQueueFullError } from './password-pool.ts';
import type { CredentialRef, Principal } from './principal.ts';
import { propertiesProblem } from './properties.ts';
import { CRATE_SCOPE_PREFIX, isCratePattern, TOKEN_SCOPES } from './scopes.ts';
import { constantTimeEqual, generateToken, hashCost, sha256Hex } from './secrets.ts';

export interface TokenEntry {
  /** Public handle for listing and revoking: the first 16 hex digits of the token's SHA-256. */
  id: string;
  /** SHA-256 of the token, hex. The token itself is never stored. */
  hash: string;
  /** `ktra`: the one login token of Ktra's API, replaced on every login; `named`: created on request. */
  kind: 'ktra' | 'named';
  name: string;
  /** `null`: unrestricted. */
  scopes: string[] | null;
  expiresAt: string | null;
  createdAt: string;
}

export interface UserRecord {
  name: string;
  /** `null` means password login is off (RestAuth: PUT with an empty password); tokens still work. */
  passwordHash: string | null;
  /**
   * When the password was last set (absent on records older than this field). Sessions and refresh
   * tokens obtained with a password end when it changes (see revalidate).
   */
  passwordChangedAt?: string | null;
  disabled: boolean;
  admin: boolean;
  robot: boolean;
  createdAt: string;
  properties: Record<string, string>;
  tokens: TokenEntry[];
}

interface TokenLookup {
  user: string;
  id: string;
}

/** A request the directory refuses; `reason` maps to a status code in each API's own format. */
export class IdentityError extends Error {
  readonly reason: 'invalid' | 'exists' | 'not-found' | 'forbidden';
  constructor(reason: IdentityError['reason'], message: string) {
    super(message);
    this.name = 'IdentityError';
    this.reason = reason;
  }
}

/** Receives security-relevant changes for the audit log; never given a secret. */
export type AuditSink = (event: string, fields: Record<string, unknown>) => void;

/** What a new user must satisfy: the name rules and shortest password of the service creating it. */
export interface AccountPolicy {
  userNames: UserNameRules;
  passwordMinLength: number;
}

export const DEFAULT_ACCOUNT_POLICY: AccountPolicy = Object.freeze({
  userNames: 'registry',
  passwordMinLength: PASSWORD_MIN_LENGTH,
});

/**
 * Where a group lives: `null` is the shared groups document (its groups own registry namespaces
 * and reach the registries as a principal's groups); a service name is that service's own groups,
 * seen by it alone (RestAuth: a group belongs to the service that created it).
 */
export type GroupScope = string | null;

const groupsKeyOf = (scope: GroupScope) => (scope === null ? GROUPS_KEY : serviceGroupsKey(scope));

export interface NewToken {
  token: string;
  entry: TokenEntry;
}

/**
 * The identity domain: users, their passwords, properties and tokens, and groups. Pure store
 * access, no HTTP; the RestAuth and Ktra plugins and the in-process IdentityClient all call this.
 */
export class Directory {
  private readonly store: ObjectStore;
  private readonly bcryptCost: number;
  private readonly passwords: PasswordPool;
  /** A real hash at the configured cost, compared against when the user does not exist (same timing). */
  private dummyHash: Promise<string> | undefined;
  private readonly audit: AuditSink;

  constructor(
    store: ObjectStore,
    { bcryptCost, passwords, audit }: { bcryptCost: number; passwords: PasswordPool; audit?: AuditSink },
  ) {
    this.store = store;
    this.bcryptCost = bcryptCost;
    this.passwords = passwords;
    this.audit = audit ?? (() => {});
    this.dummy(); // made now, so the first check for an unknown user pays no extra bcrypt
  }

  /** The dummy hash; made again if making it failed (the queue was full, say). */
  private dummy(): Promise<string> {
    if (!this.dummyHash) {
      const made = this.passwords.hash('wharf-dummy-password', this.bcryptCost);
      this.dummyHash = made;
      made.catch(() => {
        if (this.dummyHash === made) this.dummyHash = undefined;
      });
    }
    return this.dummyHash;
  }

  // ---- users ---------------------------------------------------------------------------------

  /**
   * Throws the IdentityError createUser would throw for these inputs (invalid, exists) and writes
   * nothing: RestAuth's dry-run create. Returns the normalized name.
   */
  async checkNewUser(
    rawName: string,
    password: string | null,
    options: NewUserOptions = {},
  ): Promise<string> {
    const name = normalizeName(rawName);
    const policy = options.policy ?? DEFAULT_ACCOUNT_POLICY;
    const valid = options.robot ? isValidRobotName(name) : isValidPersonName(name, policy.userNames);
    if (!valid) throw new IdentityError('invalid', `invalid username ${JSON.stringify(rawName)}`);
    if (password !== null && !isAcceptablePassword(password, policy.passwordMinLength))
      throw new IdentityError('invalid', passwordProblem(policy.passwordMinLength));
    const propertyProblem = propertiesProblem({ 'date joined': '' }, options.properties ?? {});
    if (propertyProblem) throw new IdentityError('invalid', propertyProblem);
    if (await this.store.head(userKey(name)))
      throw new IdentityError('exists', `user ${name} already exists`);
    return name;
  }

  async createUser(
    rawName: string,
    password: string | null,
    options: NewUserOptions = {},
  ): Promise<UserRecord> {
    const name = await this.checkNewUser(rawName, password, options);
    const now = new Date().toISOString();
    const record: UserRecord = {
      name,
      passwordHash: password === null ? null : await this.passwords.hash(password, this.bcryptCost),
      passwordChangedAt: password === null ? null : now,
      disabled: false,
      admin: options.admin ?? false,
      robot: options.robot ?? false,
      createdAt: now,
      properties: { 'date joined': now, ...options.properties },
      tokens: [],
    };
    let created = false;
    await updateJson<UserRecord>(this.store, userKey(name), (current) => {
      if (current) return undefined;
      created = true;
      return record;
    });
    if (!created) throw new IdentityError('exists', `user ${name} already exists`);
    this.audit('user.created', { user: name, admin: record.admin, robot: record.robot });
    return record;
  }

  async getUser(rawName: string): Promise<UserRecord | null> {
    const name = normalizeName(rawName);
    if (!isPossibleAccountName(name)) return null;
    return (await readJson<UserRecord>(this.store, userKey(name)))?.value ?? null;
  }

  async listUsers(): Promise<string[]> {
    const names: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.store.list({
        prefix: USERS_PREFIX,
        ...(continuationToken ? { continuationToken } : {}),
      });
      for (const object of page.objects) names.push(userNameOfKey(object.key));
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
    return names.sort();
  }

  /** Changes a user; `null` when the user does not exist. `change` must be pure (it may run again). */
  async updateUser(
    rawName: string,
    change: (user: UserRecord) => UserRecord | undefined,
  ): Promise<UserRecord | null> {
    const name = normalizeName(rawName);
    if (!isPossibleAccountName(name)) return null;
    return updateJson<UserRecord>(this.store, userKey(name), (current) =>
      current ? change(current) : undefined,
    );
  }

  /** Disables or enables a user, grants or removes administrator rights. */
  async setFlags(
    rawName: string,
    flags: { disabled?: boolean; admin?: boolean },
  ): Promise<UserRecord | null> {
    const user = await this.updateUser(rawName, (current) => ({
      ...current,
      disabled: flags.disabled ?? current.disabled,
      admin: flags.admin ?? current.admin,
    }));
    if (user && (flags.disabled !== undefined || flags.admin !== undefined))
      this.audit('user.flags_changed', { user: user.name, disabled: user.disabled, admin: user.admin });
    return user;
  }

  /** Sets a new password, or turns password login off with `null`. */
  async setPassword(
    name: string,
    password: string | null,
    minLength = PASSWORD_MIN_LENGTH,
  ): Promise<UserRecord | null> {
    if (password !== null && !isAcceptablePassword(password, minLength))
      throw new IdentityError('invalid', passwordProblem(minLength));
    const passwordHash = password === null ? null : await this.passwords.hash(password, this.bcryptCost);
    const passwordChangedAt = new Date().toISOString();
    const user = await this.updateUser(name, (current) => ({ ...current, passwordHash, passwordChangedAt }));
    if (user)
      this.audit(password === null ? 'user.password_removed' : 'user.password_changed', { user: user.name });
    return user;
  }

  async deleteUser(rawName: string): Promise<boolean> {
    const user = await this.getUser(rawName);
    if (!user) return false;
    // The user document is the authority: once it is gone, every token of the user is refused,
    // whatever happens to the lookup objects and group memberships cleaned up afterwards.
    await this.store.delete(userKey(user.name));
    this.audit('user.deleted', { user: user.name, tokensRevoked: user.tokens.length });
    await Promise.all(user.tokens.map((token) => this.store.delete(tokenKey(token.hash))));
    const serviceDocs = await listAllObjects(this.store, SERVICE_GROUPS_PREFIX);
    for (const key of [GROUPS_KEY, ...serviceDocs.map((object) => object.key)])
      await updateJson<GroupsDoc>(this.store, key, (doc) => {
        if (!doc || !Object.values(doc.groups).some((group) => group.users.includes(user.name)))
          return undefined;
        const groups = Object.fromEntries(
          Object.entries(doc.groups).map(([groupName, group]) => [
            groupName,
            { ...group, users: group.users.filter((member) => member !== user.name) },
          ]),
        );
        return { groups };
      });
    return true;
  }

  /**
   * The user when the password is right, else null. Unknown users, users without a password and
   * disabled users pay one bcrypt too, through the same queue, so the answer time does not tell them
   * apart. Throws PasswordQueueFullError when the password queue is full, whoever the user.
   */
  async checkPassword(rawName: string, password: string): Promise<UserRecord | null> {
    const user = await this.getUser(rawName);
    if (!user?.passwordHash || user.disabled) {
      await this.passwords.verify(password, await this.dummy());
      return null;
    }
    if (!(await this.passwords.verify(password, user.passwordHash))) return null;
    if (hashCost(user.passwordHash) !== this.bcryptCost) await this.rehash(user, password);
    return user;
  }

  /**
   * After the operator changes `auth.bcryptCost`, each password is re-hashed at the new cost on its
   * next successful check (the only moment the clear password is at hand). Only if the hash is
   * still the one just verified, so a concurrent password change wins. When the password queue is
   * full the login still succeeds and the re-hash waits for the next one.
   */
  private async rehash(user: UserRecord, password: string): Promise<void> {
    let passwordHash: string;
    try {
      passwordHash = await this.passwords.hash(password, this.bcryptCost);
    } catch (error) {
      if (error instanceof PasswordQueueFullError) return;
      throw error;
    }
    await this.updateUser(user.name, (current) =>
      current.passwordHash === user.passwordHash ? { ...current, passwordHash } : undefined,
    );
  }

  // ---- tokens --------------------------------------------------------------------------------

  /**
   * Issues a token. A `ktra` token replaces the user's previous one (Ktra: one login token per
   * user). The lookup object is written first, the user document second: a token becomes valid
   * only when the user document lists it, and is revoked the moment it no longer does.
   */
  async issueToken(
    rawName: string,
    options: { kind: 'ktra' | 'named'; name?: string; scopes?: string[] | null; expiresAt?: string | null },
  ): Promise<NewToken | null> {
    const name = normalizeName(rawName);
    const scopes = options.scopes ?? null;
    for (const scope of scopes ?? [])
      if (!isStoredScope(scope)) throw new IdentityError('invalid', `unknown scope ${JSON.stringify(scope)}`);
    if (options.expiresAt && !(Date.parse(options.expiresAt) > Date.now()))
      throw new IdentityError('invalid', 'expiresAt must be a date in the future');
    const tokenName = options.name ?? (options.kind === 'ktra' ? 'ktra' : '');
    if (options.kind === 'named' && !/^[\x20-\x7e]{1,64}$/.test(tokenName))
      throw new IdentityError('invalid', 'a token needs a name of 1 to 64 printable characters');

    const token = generateToken();
    const hash = sha256Hex(token);
    const entry: TokenEntry = {
      id: hash.slice(0, 16),
      hash,
      kind: options.kind,
      name: tokenName,
      scopes,
      expiresAt: options.expiresAt ? new Date(options.expiresAt).toISOString() : null,
      createdAt: new Date().toISOString(),
    };
    await this.store.put(tokenKey(hash), JSON.stringify({ user: name, id: entry.id } satisfies TokenLookup), {
      ifNoneMatch: '*',
      contentType: 'application/json',
    });
    // Dropped: the previous Ktra token (for a Ktra token), and any token that has expired.
    let dropped: TokenEntry[] = [];
    const updated = await this.updateUser(name, (user) => {
      dropped = user.tokens.filter((t) => (options.kind === 'ktra' && t.kind === 'ktra') || isExpired(t));
      return { ...user, tokens: [...user.tokens.filter((t) => !dropped.includes(t)), entry] };
    });
    if (!updated) {
      await this.store.delete(tokenKey(hash));
      return null;
    }
    await Promise.all(dropped.map((old) => this.store.delete(tokenKey(old.hash))));
    this.audit('token.issued', {
      user: name,
      tokenId: entry.id,
      kind: entry.kind,
      name: entry.name,
      scopes: entry.scopes,
      expiresAt: entry.expiresAt,
      replaced: dropped.map((old) => old.id),
    });
    return { token, entry };
  }

  async listTokens(rawName: string): Promise<TokenEntry[] | null> {
    const user = await this.getUser(rawName);
    return user ? user.tokens.filter((token) => !isExpired(token)) : null;
  }

  async revokeToken(rawName: string, id: string): Promise<boolean> {
    let revoked: TokenEntry | undefined;
    await this.updateUser(rawName, (user) => {
      revoked = user.tokens.find((token) => token.id === id);
      return revoked ? { ...user, tokens: user.tokens.filter((token) => token !== revoked) } : undefined;
    });
    if (!revoked) return false;
    await this.store.delete(tokenKey(revoked.hash));
    this.audit('token.revoked', { user: normalizeName(rawName), tokenId: id });
    return true;
  }

  /** Two store reads, no bcrypt: the lookup object by the token's hash, then its owner. */
  async checkToken(token: string): Promise<{ user: UserRecord; entry: TokenEntry } | null> {
    if (token.length < 16 || token.length > 256) return null;
    const hash = sha256Hex(token);
    const lookup = await readJson<TokenLookup>(this.store, tokenKey(hash));
    if (!lookup) return null;
    const user = (await readJson<UserRecord>(this.store, userKey(lookup.value.user)))?.value;
    const entry = user?.tokens.find((candidate) => candidate.id === lookup.value.id);
    if (!user || !entry || !constantTimeEqual(entry.hash, hash) || isExpired(entry) || user.disabled)
      return null;
    return { user, entry };
  }

  // ---- groups --------------------------------------------------------------------------------

  async groups(scope: GroupScope = null): Promise<GroupsDoc> {
    return (await readJson<GroupsDoc>(this.store, groupsKeyOf(scope)))?.value ?? EMPTY_GROUPS;
  }

  /** Changes the groups document; `change` throws IdentityError to refuse, returns undefined to keep. */
  async updateGroups(
    change: (doc: GroupsDoc) => GroupsDoc | undefined,
    scope: GroupScope = null,
  ): Promise<GroupsDoc> {
    return (
      (await updateJson<GroupsDoc>(this.store, groupsKeyOf(scope), (doc) => change(doc ?? EMPTY_GROUPS))) ??
      EMPTY_GROUPS
    );
  }

  /**
   * Whether a group may have this (normalized) name here: shared groups name namespaces, so they
   * follow the registry rules; a service's own groups never do, and may follow RestAuth's.
   */
  private isValidGroupNameIn(name: string, scope: GroupScope, rules: UserNameRules): boolean {
    return scope !== null && rules === 'restauth' ? isValidPersonName(name, rules) : isValidGroupName(name);
  }

  /** Throws the IdentityError createGroup would (invalid, exists) and writes nothing. */
  async checkNewGroup(
    rawName: string,
    scope: GroupScope = null,
    rules: UserNameRules = 'registry',
  ): Promise<string> {
    const name = normalizeName(rawName);
    if (!this.isValidGroupNameIn(name, scope, rules))
      throw new IdentityError('invalid', `invalid group name ${JSON.stringify(rawName)}`);
    if (groupNamed(await this.groups(scope), name))
      throw new IdentityError('exists', `group ${name} already exists`);
    return name;
  }

  async createGroup(
    rawName: string,
    scope: GroupScope = null,
    rules: UserNameRules = 'registry',
  ): Promise<void> {
    const name = normalizeName(rawName);
    if (!this.isValidGroupNameIn(name, scope, rules))
      throw new IdentityError('invalid', `invalid group name ${JSON.stringify(rawName)}`);
    await this.updateGroups((doc) => {
      if (groupNamed(doc, name)) throw new IdentityError('exists', `group ${name} already exists`);
      return {
        groups: { ...doc.groups, [name]: { users: [], subgroups: [], createdAt: new Date().toISOString() } },
      };
    }, scope);
  }

  async deleteGroup(rawName: string, scope: GroupScope = null): Promise<boolean> {
    const name = normalizeName(rawName);
    let found = false;
    await this.updateGroups((doc) => {
      found = groupNamed(doc, name) !== undefined;
      if (!found) return undefined;
      const groups = Object.fromEntries(
        Object.entries(doc.groups)
          .filter(([groupName]) => groupName !== name)
          .map(([groupName, group]) => [
            groupName,
            { ...group, subgroups: group.subgroups.filter((g) => g !== name) },
          ]),
      );
      return { groups };
    }, scope);
    return found;
  }

  /** Makes a user a direct member of each of these groups (those that exist). */
  async addToGroups(groups: string[], rawUser: string, scope: GroupScope = null): Promise<void> {
    const user = normalizeName(rawUser);
    await this.updateGroups((doc) => {
      let next = doc.groups;
      for (const group of groups.map(normalizeName)) {
        const current = ownValue(next, group);
        if (current && !current.users.includes(user))
          next = { ...next, [group]: { ...current, users: [...current.users, user] } };
      }
      return { groups: next };
    }, scope);
  }

  async groupsOf(rawName: string): Promise<string[]> {
    return groupsOfUser(await this.groups(), normalizeName(rawName));
  }

  async membersOf(rawName: string, scope: GroupScope = null): Promise<string[] | null> {
    const doc = await this.groups(scope);
    const name = normalizeName(rawName);
    return groupNamed(doc, name) ? membersOfGroup(doc, name) : null;
  }

  // ---- principals ----------------------------------------------------------------------------

  /**
   * The principal of a user for a credential just checked. `groups` may be a read of the groups
   * document already under way (token checks start it early).
   */
  async principalFor(
    user: UserRecord,
    credential: CredentialRef,
    scopes: string[] | null,
    groups: Promise<GroupsDoc> = this.groups(),
  ): Promise<Principal> {
    return {
      kind: user.robot ? 'robot' : 'user',
      name: user.name,
      groups: groupsOfUser(await groups, user.name),
      scopes,
      via: credential.type === 'password' ? 'password' : credential.type === 'token' ? 'token' : 'session',
      admin: user.admin,
      credential,
    };
  }

  /** The reference a password check leaves behind: ends with the next password change. */
  static passwordCredential(user: UserRecord): CredentialRef {
    return { type: 'password', user: user.name, passwordChangedAt: user.passwordChangedAt ?? null };
  }

  /**
   * The principal as the user is now for a credential checked earlier (see IdentityClient.revalidate):
   * null when the user is gone or disabled, the password changed or removed since, the token revoked
   * or expired. A token's current scopes win over the ones remembered.
   */
  async revalidate(credential: CredentialRef, scopes: string[] | null): Promise<Principal | null> {
    if (credential.type === 'robot') return null;
    const groups = this.groups();
    groups.catch(() => {}); // awaited below only for a valid credential
    const user = await this.getUser(credential.user);
    if (!user || user.disabled) return null;
    switch (credential.type) {
      case 'password':
        if (user.passwordHash === null || (user.passwordChangedAt ?? null) !== credential.passwordChangedAt)
          return null;
        return this.principalFor(user, credential, scopes, groups);
      case 'token': {
        const entry = user.tokens.find((token) => token.id === credential.tokenId);
        return entry && !isExpired(entry) ? this.principalFor(user, credential, entry.scopes, groups) : null;
      }
      case 'account':
        return this.principalFor(user, credential, scopes, groups);
    }
  }
}

export interface NewUserOptions {
  admin?: boolean;
  robot?: boolean;
  properties?: Record<string, string>;
  /** The creating service's name rules and shortest password; the default is wharf's own. */
  policy?: AccountPolicy;
}

export function isExpired(token: TokenEntry, now = Date.now()): boolean {
  return token.expiresAt !== null && Date.parse(token.expiresAt) <= now;
}

/** A scope as stored on a token: a known scope, or a `crate:` pattern (server/identity/scopes.ts). */
function isStoredScope(scope: string): boolean {
  if (scope.startsWith(CRATE_SCOPE_PREFIX)) return isCratePattern(scope.slice(CRATE_SCOPE_PREFIX.length));
  return (TOKEN_SCOPES as readonly string[]).includes(scope);
}
