import type { Principal } from '../identity/principal.ts';
import { type Operation, scopeRefusal } from '../identity/scopes.ts';
import type { CrateMeta } from '../registry/cargo/owners.ts';
import { isNamespaceName, namespaceOf } from '../registry/oci/names.ts';
import type { Repository, RepositoryRole } from '../registry/oci/permissions.ts';

/**
 * "May this principal do this here?" — the one question every surface asks (cargo's Web API and
 * private index, /v2/ and its token endpoint, API v1, /auth/api/v1, Ktra), answered in one place.
 * It checks the credential's scopes (server/identity/scopes.ts), then the account's rights on the
 * resource: crate ownership, repository roles and namespaces (Quay's model), administrators and
 * superusers. Surfaces only translate a refusal into their protocol's answer.
 */
export type AccessRequest =
  | { operation: 'cargo.read' }
  | { operation: 'cargo.publish'; crate: string; existing: CrateMeta | null }
  | { operation: 'cargo.yank' | 'cargo.change-owners'; crate: CrateMeta }
  | { operation: 'oci.pull' | 'oci.push' | 'oci.delete'; repository: string; record: Repository | null }
  | { operation: 'oci.catalog' }
  /** API v1 management; `record` null means creating `repository` (its namespace decides). */
  | { operation: 'oci.manage'; repository: string; record: Repository | null; role: 'write' | 'admin' }
  | { operation: 'account.read' }
  /** Credentials: the caller's own tokens, or the robots of `namespace`. */
  | { operation: 'account.credentials'; namespace?: string }
  | { operation: 'account.admin' };

/**
 * Why a request is refused: `authenticate` (anonymous, credentials would help), `scope` (the token's
 * scopes do not allow it), `forbidden` (the account may not), `unknown` (the caller may not even
 * know the resource exists; surfaces answer it as "not found"), `read-only` (nobody may: a proxy
 * namespace holds only what its upstream has; /v2/ answers DENIED whatever the credentials).
 */
export type Decision =
  | { allowed: true }
  | {
      allowed: false;
      reason: 'authenticate' | 'scope' | 'forbidden' | 'unknown' | 'read-only';
      message: string;
    };

export interface PolicySettings {
  /** Accounts with every right on every repository and crate (`registry.superusers`). */
  superusers: readonly string[];
  /** Anonymous pull of public repositories (`registry.oci.anonymousPull`). */
  anonymousPull: boolean;
  /** RFC 3139: reading the Cargo registry needs a token (`registry.cargo.authRequired`). */
  cargoAuthRequired: boolean;
  /**
   * Namespaces that are pull-through caches (`registry.oci.proxies`): read by any account (and
   * anonymously when the proxy allows it), written by nobody but the cache itself.
   */
  proxies?: readonly { namespace: string; anonymousPull?: boolean }[];
}

const ALLOWED: Decision = { allowed: true };
const RANK: Record<RepositoryRole, number> = { read: 1, write: 2, admin: 3 };
const ROLE_FOR: Record<'oci.pull' | 'oci.push' | 'oci.delete', RepositoryRole> = {
  'oci.pull': 'read',
  'oci.push': 'write',
  'oci.delete': 'write',
};

export class AccessPolicy {
  readonly settings: PolicySettings;

  constructor(settings: PolicySettings) {
    this.settings = settings;
  }

  decide(principal: Principal, request: AccessRequest): Decision {
    const anonymous = principal.kind === 'anonymous';
    const readOnly = this.proxyRefusal(request);
    if (readOnly) return readOnly;
    const operation = scopedOperation(request);
    const refusedByScope = anonymous ? null : scopeRefusal(principal.scopes, operation, crateOf(request));
    if (refusedByScope) return deny('scope', refusedByScope);
    switch (request.operation) {
      case 'cargo.read':
        return anonymous && this.settings.cargoAuthRequired
          ? deny('authenticate', 'this registry is private: a token is needed')
          : ALLOWED;
      case 'cargo.publish':
        if (anonymous) return deny('authenticate', 'publishing needs a token');
        if (!request.existing || this.ownsCrate(principal, request.existing)) return ALLOWED;
        return deny('forbidden', `you are not an owner of crate \`${request.existing.name}\``);
      case 'cargo.yank':
      case 'cargo.change-owners':
        if (anonymous) return deny('authenticate', 'this needs a token');
        return this.ownsCrate(principal, request.crate)
          ? ALLOWED
          : deny('forbidden', `you are not an owner of crate \`${request.crate.name}\``);
      case 'oci.pull':
      case 'oci.push':
      case 'oci.delete':
        return this.repositoryAction(principal, request);
      case 'oci.catalog':
        return anonymous ? deny('authenticate', 'the catalog needs credentials') : ALLOWED;
      case 'oci.manage':
        return this.manage(principal, request.repository, request.record, request.role);
      case 'account.read':
        return anonymous ? deny('authenticate', 'authentication required') : ALLOWED;
      case 'account.credentials':
        if (anonymous) return deny('authenticate', 'authentication required');
        if (request.namespace === undefined || this.ownsNamespace(principal, request.namespace))
          return ALLOWED;
        return deny('forbidden', `you may not manage the robots of ${request.namespace}`);
      case 'account.admin':
        if (anonymous) return deny('authenticate', 'authentication required');
        return this.isSuperuser(principal) ? ALLOWED : deny('forbidden', 'administrators only');
    }
  }

  /** The proxy (`registry.oci.proxies[]`) whose namespace holds a repository, if any. */
  proxyOf(repository: string): { namespace: string; anonymousPull?: boolean } | undefined {
    const namespace = namespaceOf(repository);
    return this.settings.proxies?.find((proxy) => proxy.namespace === namespace);
  }

  /** Writes into a proxy namespace are refused to everyone, superusers included. */
  private proxyRefusal(request: AccessRequest): Decision | null {
    if (!('repository' in request) || request.operation === 'oci.pull') return null;
    const proxy = this.proxyOf(request.repository);
    if (!proxy) return null;
    return deny(
      'read-only',
      `${proxy.namespace} is a pull-through cache: its repositories hold what the upstream registry has and cannot be pushed to, deleted or managed`,
    );
  }

  /** An administrator, or an account named in `registry.superusers`. Robots never are. */
  isSuperuser(principal: Principal): boolean {
    return (
      principal.kind === 'user' && (principal.admin || this.settings.superusers.includes(principal.name))
    );
  }

  /**
   * A namespace is owned by the user of that name, by the members of the group of that name, and by
   * superusers. Only a valid namespace name is anyone's: a user named as RestAuth allows (`mati
   * space`) owns none, not even one spelled like its name.
   */
  ownsNamespace(principal: Principal, namespace: string): boolean {
    if (!isNamespaceName(namespace)) return false;
    if (this.isSuperuser(principal)) return true;
    return (
      principal.kind === 'user' && (principal.name === namespace || principal.groups.includes(namespace))
    );
  }

  /** The strongest role a principal holds on an existing repository, or null (scopes aside). */
  roleOn(principal: Principal, repository: Repository): RepositoryRole | null {
    if (this.ownsNamespace(principal, repository.namespace)) return 'admin';
    let best: RepositoryRole | null = null;
    const consider = (role: RepositoryRole | undefined) => {
      if (role && (!best || RANK[role] > RANK[best])) best = role;
    };
    if (principal.kind !== 'anonymous') {
      consider(grantOf(repository.users, principal.name));
      if (principal.kind === 'user')
        for (const group of principal.groups) consider(grantOf(repository.teams, group));
    }
    if (repository.visibility === 'public' && (principal.kind !== 'anonymous' || this.settings.anonymousPull))
      consider('read');
    return best;
  }

  private ownsCrate(principal: Principal, crate: CrateMeta): boolean {
    if (this.isSuperuser(principal)) return true;
    if (principal.kind !== 'anonymous' && crate.owners.users.includes(principal.name)) return true;
    return principal.groups.some((group) => crate.owners.groups.includes(group));
  }

  private repositoryAction(
    principal: Principal,
    request: {
      operation: 'oci.pull' | 'oci.push' | 'oci.delete';
      repository: string;
      record: Repository | null;
    },
  ): Decision {
    const { record } = request;
    const proxy = this.proxyOf(request.repository);
    if (proxy) {
      // Only pulls reach here (proxyRefusal); the cache's repositories are as public as the proxy says.
      const anonymousPull = proxy.anonymousPull ?? this.settings.anonymousPull;
      return principal.kind === 'anonymous' && !anonymousPull
        ? deny('authenticate', 'authentication required')
        : ALLOWED;
    }
    if (!record) {
      // Push-to-create (Quay): whoever owns the namespace holds every right on a repository that is
      // not there yet; pushing into it creates it.
      if (this.ownsNamespace(principal, namespaceOf(request.repository))) return ALLOWED;
      return principal.kind === 'anonymous'
        ? deny('authenticate', 'authentication required')
        : deny('unknown', `repository ${request.repository} not found`);
    }
    const role = this.roleOn(principal, record);
    if (role !== null && RANK[role] >= RANK[ROLE_FOR[request.operation]]) return ALLOWED;
    if (principal.kind === 'anonymous') return deny('authenticate', 'authentication required');
    return role === null
      ? deny('unknown', `repository ${request.repository} not found`)
      : deny('forbidden', `your role on ${request.repository} does not allow this`);
  }

  private manage(
    principal: Principal,
    repository: string,
    record: Repository | null,
    role: 'write' | 'admin',
  ): Decision {
    if (principal.kind === 'anonymous') return deny('authenticate', 'authentication required');
    if (!record)
      return this.ownsNamespace(principal, namespaceOf(repository))
        ? ALLOWED
        : deny('forbidden', `you may not create repositories in ${namespaceOf(repository)}`);
    const held = this.roleOn(principal, record);
    if (held === null) return deny('unknown', `repository ${repository} not found`);
    return RANK[held] >= RANK[role]
      ? ALLOWED
      : deny('forbidden', `this needs the ${role} role on ${repository}`);
  }
}

/** A grant from a record's user or team map; never something inherited from Object.prototype. */
function grantOf(grants: Record<string, RepositoryRole>, name: string): RepositoryRole | undefined {
  return Object.hasOwn(grants, name) ? grants[name] : undefined;
}

/** The entry of the scope table that decides this request. */
function scopedOperation(request: AccessRequest): Operation {
  if (request.operation === 'cargo.publish')
    return request.existing ? 'cargo.publish-update' : 'cargo.publish-new';
  if (request.operation === 'oci.catalog') return 'oci.pull';
  return request.operation;
}

function crateOf(request: AccessRequest): string | undefined {
  switch (request.operation) {
    case 'cargo.publish':
      return request.existing?.name ?? request.crate;
    case 'cargo.yank':
    case 'cargo.change-owners':
      return request.crate.name;
    default:
      return undefined;
  }
}

function deny(
  reason: 'authenticate' | 'scope' | 'forbidden' | 'unknown' | 'read-only',
  message: string,
): Decision {
  return { allowed: false, reason, message };
}
