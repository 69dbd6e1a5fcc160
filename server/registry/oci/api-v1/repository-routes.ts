import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessRequest } from '../../../access/policy.ts';
import { AUTHENTICATE } from '../../../access/route-access.ts';
import { publicBaseUrl } from '../../../http/proxies.ts';
import { isValidGroupName, isValidUsername, normalizeName } from '../../../identity/names.ts';
import { isNamespaceName, isRepositoryName, parseDigest, TAG } from '../names.ts';
import type { Repository, RepositoryRole } from '../permissions.ts';
import { ROBOT_NAME } from '../robots.ts';
import type { OciServices } from '../services.ts';
import { type ApiCaller, callerOf, invalid, notFound, refusal } from './caller.ts';
import { ImageDetails } from './image-details.ts';
import { pullCommands } from './pull-commands.ts';

interface RepositoryContext {
  request: FastifyRequest;
  reply: FastifyReply;
  caller: ApiCaller;
  name: string;
  repository: Repository;
  match: RegExpExecArray;
}

/**
 * One route under `/api/v1/repository/{name}/…`. Repository names contain `/`, so Fastify matches
 * one wildcard and this table picks the route by suffix; each entry declares the operation it
 * needs on the repository (server/access/policy.ts), checked before its handler runs.
 */
interface RepositoryRoute {
  method: string;
  pattern: RegExp;
  operation: (name: string, record: Repository) => AccessRequest;
  handler: (context: RepositoryContext) => Promise<unknown>;
}

const ROLES = ['read', 'write', 'admin'] as const;

const read = (repository: string, record: Repository): AccessRequest => ({
  operation: 'oci.pull',
  repository,
  record,
});
const manage =
  (role: 'write' | 'admin') =>
  (repository: string, record: Repository): AccessRequest => ({
    operation: 'oci.manage',
    repository,
    record,
    role,
  });

/** The repository routes of API v1 (Quay's paths): tags, manifests, permissions, visibility. */
export async function repositoryRoutes(
  app: FastifyInstance,
  { services }: { services: OciServices },
): Promise<void> {
  const { repositories, robots, policy } = services;
  const images = new ImageDetails(services);

  /** The referrers of a manifest, with the time each was pushed. */
  async function referrersOf(name: string, digest: string) {
    const subject = parseDigest(digest);
    if (!subject) return [];
    const result = [];
    for (const descriptor of await services.manifests.referrers(name, subject)) {
      const stored = await services.manifests.get(name, descriptor.digest);
      const details = stored ? await images.of(name, stored) : null;
      result.push({
        digest: descriptor.digest,
        media_type: descriptor.mediaType,
        artifact_type: descriptor.artifactType ?? null,
        size: descriptor.size,
        annotations: descriptor.annotations ?? {},
        created: descriptor.annotations?.['org.opencontainers.image.created'] ?? details?.created ?? null,
      });
    }
    return result;
  }

  const routes: RepositoryRoute[] = [
    {
      method: 'GET',
      pattern: /^(.+)\/tag$/,
      operation: read,
      // Quay's tag list: `page`, `limit` (at most 100), `specificTag` (one name) and
      // `filter_tag_name` (`like:TEXT` or `eq:NAME`), newest first; one listing of the tags, then
      // only the page's tags and manifests are read.
      handler: async ({ request, name }) => {
        const query = request.query as Record<string, string | undefined>;
        const limit = Math.min(Math.max(Number(query.limit ?? 50) || 50, 1), 100);
        const page = Math.min(Math.max(Number(query.page ?? 1) || 1, 1), 1_000_000);
        const filter = tagFilter(query.specificTag, query.filter_tag_name);
        const all = (await services.manifests.tagsWithTimes(name))
          .filter((tag) => filter(tag.name))
          .sort(
            (a, b) =>
              b.lastModified.getTime() - a.lastModified.getTime() ||
              (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
          );
        const slice = all.slice((page - 1) * limit, page * limit);
        const tags = [];
        for (const tag of slice) {
          const manifest = await services.manifests.get(name, tag.name);
          const details = manifest ? await images.of(name, manifest) : null;
          tags.push({
            name: tag.name,
            reversion: false,
            start_ts: Math.floor(tag.lastModified.getTime() / 1000),
            last_modified: tag.lastModified.toUTCString(),
            manifest_digest: manifest?.digest.text ?? null,
            is_manifest_list: details?.is_manifest_list ?? false,
            size: details?.size ?? null,
            media_type: details?.media_type ?? null,
            created: details?.created ?? null,
            // An index's platforms, or a single image's own (from its config).
            platforms: details?.platform
              ? [details.platform]
              : (details?.platforms.map((p) => p.platform).filter((p) => p !== null) ?? []),
          });
        }
        return { tags, page, has_additional: all.length > page * limit, total: all.length };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/tag\/([^/]+)$/,
      operation: read,
      // One tag with its manifest's details and the lines that pull it (wharf's addition).
      handler: async ({ request, name, match }) => {
        const tag = match[2] as string;
        if (!TAG.test(tag)) throw invalid('invalid tag name');
        const manifest = await services.manifests.get(name, tag);
        if (!manifest) throw notFound();
        const base = publicBaseUrl(services.publicUrl, request);
        return {
          name: tag,
          manifest_digest: manifest.digest.text,
          ...(await images.of(name, manifest)),
          referrers: await referrersOf(name, manifest.digest.text),
          pull: pullCommands(base, name, tag),
          pull_by_digest: pullCommands(base, name, manifest.digest.text),
        };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)\/tag\/([^/]+)$/,
      // The same rule as DELETE /v2/…/manifests/<tag>.
      operation: (repository, record) => ({ operation: 'oci.delete', repository, record }),
      handler: async ({ reply, name, match }) => {
        const tag = match[2] as string;
        if (!TAG.test(tag)) throw invalid('invalid tag name');
        if (!(await services.manifests.deleteTag(name, tag))) throw notFound();
        return reply.code(204).send();
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/manifest\/([^/]+)$/,
      operation: read,
      handler: async ({ request, name, match }) => {
        const digest = parseDigest(match[2] as string);
        if (!digest) throw invalid('invalid manifest digest');
        const manifest = await services.manifests.get(name, digest.text);
        if (!manifest) throw notFound();
        return {
          ...(await images.of(name, manifest)),
          manifest_data: manifest.body.toString('utf8'),
          pull: pullCommands(publicBaseUrl(services.publicUrl, request), name, manifest.digest.text),
        };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/manifest\/([^/]+)\/referrers$/,
      operation: read,
      // What refers to this manifest (signatures, SBOMs, attestations), as /v2/…/referrers lists it.
      handler: async ({ request, name, match }) => {
        const digest = parseDigest(match[2] as string);
        if (!digest) throw invalid('invalid manifest digest');
        if (!(await services.manifests.get(name, digest.text))) throw notFound();
        const artifactType = (request.query as { artifactType?: string }).artifactType;
        const referrers = await referrersOf(name, digest.text);
        return {
          referrers:
            typeof artifactType === 'string'
              ? referrers.filter((r) => r.artifact_type === artifactType)
              : referrers,
        };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/manifest\/([^/]+)\/labels$/,
      operation: read,
      // Quay's labels of a manifest: here the image config's labels.
      handler: async ({ name, match }) => {
        const digest = parseDigest(match[2] as string);
        if (!digest) throw invalid('invalid manifest digest');
        const manifest = await services.manifests.get(name, digest.text);
        if (!manifest) throw notFound();
        const { labels } = await images.of(name, manifest);
        return {
          labels: Object.entries(labels).map(([key, value]) => ({
            id: `${digest.text}:${key}`,
            key,
            value,
            source_type: 'manifest',
            media_type: 'text/plain',
          })),
        };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/permissions\/(user|team)$/,
      operation: manage('admin'),
      handler: async ({ repository, match }) => {
        const grants = match[2] === 'user' ? repository.users : repository.teams;
        const permissions: Record<string, unknown> = {};
        for (const [who, role] of Object.entries(grants)) {
          permissions[who] = {
            name: who,
            role,
            ...(match[2] === 'user' ? { is_robot: who.includes('+') } : {}),
          };
        }
        return { permissions };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      operation: manage('admin'),
      handler: async ({ repository, match }) => {
        const { kind, who } = grantee(match);
        const grants = kind === 'user' ? repository.users : repository.teams;
        if (!Object.hasOwn(grants, who)) throw notFound();
        return { name: who, role: grants[who] };
      },
    },
    {
      method: 'PUT',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      operation: manage('admin'),
      handler: async ({ request, name, match }) => {
        const role = (request.body as { role?: unknown } | undefined)?.role;
        if (!ROLES.includes(role as RepositoryRole)) throw invalid('role must be read, write or admin');
        const { kind, who } = grantee(match);
        if (kind === 'user' && who.includes('+')) {
          const plus = who.indexOf('+');
          if (!(await robots.get(who.slice(0, plus), who.slice(plus + 1)))) throw invalid('unknown robot');
        } else if (
          kind === 'user'
            ? !(await services.identity.userExists(who))
            : !(await services.identity.groupExists(who))
        ) {
          throw invalid(`unknown ${kind}`);
        }
        await repositories.update(name, (current) => {
          const grants = kind === 'user' ? current.users : current.teams;
          return {
            ...current,
            [kind === 'user' ? 'users' : 'teams']: { ...grants, [who]: role as RepositoryRole },
          };
        });
        return { name: who, role };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)\/permissions\/(user|team)\/([^/]+)$/,
      operation: manage('admin'),
      handler: async ({ reply, name, repository, match }) => {
        const { kind, who } = grantee(match);
        if (!Object.hasOwn(kind === 'user' ? repository.users : repository.teams, who)) throw notFound();
        await repositories.update(name, (current) => {
          const grants = { ...(kind === 'user' ? current.users : current.teams) };
          delete grants[who];
          return { ...current, [kind === 'user' ? 'users' : 'teams']: grants };
        });
        return reply.code(204).send();
      },
    },
    {
      method: 'POST',
      pattern: /^(.+)\/changevisibility$/,
      operation: manage('admin'),
      handler: async ({ request, name }) => {
        const visibility = (request.body as { visibility?: string } | undefined)?.visibility;
        if (visibility !== 'public' && visibility !== 'private')
          throw invalid('visibility must be public or private');
        await repositories.update(name, (current) => ({ ...current, visibility }));
        return { success: true };
      },
    },
    {
      method: 'GET',
      pattern: /^(.+)$/,
      operation: read,
      handler: async ({ caller, repository, name }) => {
        const entries: [string, { name: string; manifest_digest: string | null }][] = [];
        for (const tag of (await services.manifests.tags(name)).sort().slice(0, 100)) {
          const digest = (await services.manifests.resolve(name, tag))?.text ?? null;
          entries.push([tag, { name: tag, manifest_digest: digest }]);
        }
        // fromEntries: `__proto__` is a valid tag, which an assignment would swallow.
        const tags = Object.fromEntries(entries);
        return { ...describeRepository(services, caller.principal, repository), tags };
      },
    },
    {
      method: 'PUT',
      pattern: /^(.+)$/,
      operation: manage('write'),
      handler: async ({ request, name }) => {
        const description = (request.body as { description?: unknown } | undefined)?.description;
        if (typeof description !== 'string' || description.length > 4096)
          throw invalid('description is required (a string of at most 4096 characters)');
        await repositories.update(name, (current) => ({ ...current, description }));
        return { success: true };
      },
    },
    {
      method: 'DELETE',
      pattern: /^(.+)$/,
      operation: manage('admin'),
      handler: async ({ reply, name }) => {
        await repositories.delete(name);
        return reply.code(204).send();
      },
    },
  ];

  app.route({
    method: ['GET', 'PUT', 'POST', 'DELETE'],
    url: '/api/v1/repository/*',
    schema: { params: { type: 'object', properties: { '*': { type: 'string', maxLength: 1024 } } } },
    handler: async (request, reply) => {
      const caller = callerOf(request);
      // Fastify has decoded the path once already; decoding it again would turn `%25` into errors.
      const path = (request.params as { '*': string })['*'].replace(/\/$/, '');
      for (const route of routes) {
        if (route.method !== request.method) continue;
        const match = route.pattern.exec(path);
        if (!match) continue;
        const name = match[1] as string;
        if (!isRepositoryName(name)) continue;
        const record = await repositories.get(name);
        if (!record) throw notFound();
        // An account with no role on the repository learns nothing about it (Quay answers 404 as
        // for an unknown one; 401 to anonymous callers). The token's scopes are the operation's concern.
        if (policy.roleOn(caller.principal, record) === null)
          throw caller.principal.kind === 'anonymous' ? refusal(AUTHENTICATE) : notFound();
        const decision = policy.decide(caller.principal, route.operation(name, record));
        if (!decision.allowed) throw refusal(decision);
        return route.handler({ request, reply, caller, name, repository: record, match });
      }
      throw notFound();
    },
  });
}

/**
 * The user, robot or team a permission route names, validated; names are case-insensitive (as the
 * AuthService folds them), so `Bob` is `bob`.
 */
function grantee(match: RegExpExecArray): { kind: 'user' | 'team'; who: string } {
  const kind = match[2] as 'user' | 'team';
  const who = normalizeName(match[3] as string);
  const plus = who.indexOf('+');
  const valid =
    kind === 'team'
      ? isValidGroupName(who)
      : plus >= 0
        ? isNamespaceName(who.slice(0, plus)) && ROBOT_NAME.test(who.slice(plus + 1))
        : isValidUsername(who);
  if (!valid) throw invalid(`invalid ${kind === 'team' ? 'team' : 'user'} name`);
  return { kind, who };
}

/** A repository as API v1 lists it, with what this caller may do there. */
export function describeRepository(
  services: OciServices,
  principal: ApiCaller['principal'],
  record: Repository,
) {
  const may = (role: 'write' | 'admin') =>
    services.policy.decide(principal, { operation: 'oci.manage', repository: record.name, record, role })
      .allowed;
  return {
    namespace: record.namespace,
    name: record.name.slice(record.namespace.length + 1),
    description: record.description,
    is_public: record.visibility === 'public',
    kind: 'image',
    can_write: may('write'),
    can_admin: may('admin'),
  };
}

/** Quay's tag filters: `specificTag` names one tag; `filter_tag_name` is `like:TEXT` or `eq:NAME`. */
function tagFilter(
  specificTag: string | undefined,
  filterTagName: string | undefined,
): (tag: string) => boolean {
  if (specificTag !== undefined) return (tag) => tag === specificTag;
  if (filterTagName === undefined) return () => true;
  const [kind, ...rest] = filterTagName.split(':');
  const value = rest.join(':');
  if (kind === 'eq') return (tag) => tag === value;
  if (kind === 'like') return (tag) => tag.toLowerCase().includes(value.toLowerCase());
  throw invalid('filter_tag_name must be like:TEXT or eq:NAME');
}
