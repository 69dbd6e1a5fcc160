import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { updateJson } from '../../store/json-doc.ts';
import { type CargoContext, READ } from './context.ts';
import { CargoError } from './errors.ts';
import { updateIndexFile } from './index-file.ts';
import { canonicalName, cratePathProblem, withoutBuildMetadata } from './names.ts';
import { type CrateMeta, GROUP_PREFIX, listOwners, readMeta } from './owners.ts';
import { storeKeys } from './paths.ts';
import { publishBodyLimit, publishCrate } from './publish.ts';

const crateParams = {
  type: 'object',
  properties: { crate: { type: 'string' }, version: { type: 'string' } },
  required: ['crate'],
} as const;

/** A route's `:crate` and `:version`, refused in cargo's format before they reach the store. */
export async function checkCrateParams(request: FastifyRequest): Promise<void> {
  const { crate, version } = request.params as { crate?: string; version?: string };
  const problem = cratePathProblem(crate, version);
  if (problem) throw new CargoError(problem);
}

const ownersBody = {
  type: 'object',
  properties: {
    users: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 100 },
  },
  required: ['users'],
} as const;

/** The Cargo Web API (registry-web-api.md): publish, yank, owners, download; search is in crate-routes.ts. */
export async function apiRoutes(app: FastifyInstance, context: CargoContext): Promise<void> {
  const { config, store, logger, identity } = context;
  const cargo = config.registry.cargo;

  // cargo sends the publish body without a meaningful content type; take every body as bytes here.
  // Both parsers keep the server's JSON limit; only publish takes a .crate (its route's bodyLimit).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimitBytes }, (_r, body, done) =>
    done(null, body),
  );
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: config.bodyLimitBytes },
    (_r, body, done) => {
      try {
        // cargo's yank/unyank carry an empty body with a JSON content type.
        const text = (body as Buffer).toString('utf8');
        done(null, text.trim() === '' ? undefined : JSON.parse(text));
      } catch {
        done(new CargoError('the request body is not valid JSON'), undefined);
      }
    },
  );

  // The crate is named inside the upload: publishCrate asks the policy once it has read it.
  // Its body is the .crate plus JSON metadata (which carries the README text).
  const publishRoute = {
    config: { access: 'authenticated' as const },
    bodyLimit: publishBodyLimit(cargo.maxCrateBytes),
  };
  app.put('/api/v1/crates/new', publishRoute, async (request) => {
    const body = request.body;
    if (!Buffer.isBuffer(body)) throw new CargoError('the publish request has no body');
    const principal = request.principal;
    const { line } = await publishCrate(store, context.files, logger, context.policy, principal, body, {
      maxCrateBytes: cargo.maxCrateBytes,
      maxUnpackedBytes: cargo.maxUnpackedBytes,
      onInflated: (bytes) => context.cargoMetrics.unpackedBytes.inc(bytes),
    });
    context.catalog.forget();
    context.cargoMetrics.publishes.inc({ result: 'published' });
    logger.info({ crate: line.name, version: line.vers, by: principal.name }, 'crate published');
    return { warnings: { invalid_categories: [], invalid_badges: [], other: [] } };
  });

  type VersionRequest = FastifyRequest<{ Params: { crate: string; version: string } }>;
  const setYanked = (yanked: boolean) => async (request: VersionRequest) => {
    const { crate, version } = request.params;
    const principal = request.principal;
    const meta = await ownedCrate(crate);
    let found = false;
    await updateIndexFile(store, storeKeys.index(meta.name), (lines) => {
      const line =
        lines.find((l) => l.vers === version) ?? lines.find((l) => withoutBuildMetadata(l.vers) === version);
      found = Boolean(line);
      if (!line || line.yanked === yanked) return undefined;
      return lines.map((l) => (l === line ? { ...l, yanked } : l));
    });
    context.files.forget(storeKeys.index(meta.name));
    if (!found) throw new CargoError(`crate \`${meta.name}\` has no version \`${version}\``, 404);
    logger.info(
      { crate: meta.name, version, yanked, by: principal.name },
      yanked ? 'version yanked' : 'version unyanked',
    );
    return { ok: true };
  };
  const ownerOnly = (operation: 'cargo.yank' | 'cargo.change-owners') => ({
    access: async (request: FastifyRequest) => ({
      operation,
      crate: await ownedCrate((request.params as { crate: string }).crate),
    }),
  });
  app.delete<{ Params: { crate: string; version: string } }>(
    '/api/v1/crates/:crate/:version/yank',
    { schema: { params: crateParams }, preValidation: checkCrateParams, config: ownerOnly('cargo.yank') },
    setYanked(true),
  );
  app.put<{ Params: { crate: string; version: string } }>(
    '/api/v1/crates/:crate/:version/unyank',
    { schema: { params: crateParams }, preValidation: checkCrateParams, config: ownerOnly('cargo.yank') },
    setYanked(false),
  );

  app.get<{ Params: { crate: string } }>(
    '/api/v1/crates/:crate/owners',
    { schema: { params: crateParams }, preValidation: checkCrateParams, config: READ },
    async (request) => ({ users: listOwners(await ownedCrate(request.params.crate)) }),
  );

  // `cargo owner` sends JSON; a body that arrived as raw bytes (no content type) is parsed here.
  const jsonBody = async (request: { body: unknown }) => {
    if (Buffer.isBuffer(request.body)) {
      try {
        request.body = JSON.parse(request.body.toString('utf8'));
      } catch {
        throw new CargoError('the request body is not valid JSON');
      }
    }
  };
  const changeOwners =
    (add: boolean) =>
    async (request: FastifyRequest<{ Params: { crate: string }; Body: { users: string[] } }>) => {
      const meta = await ownedCrate(request.params.crate);
      // Account and group names are case-insensitive in the AuthService; store them as it does.
      const logins = request.body.users.map((login) => login.toLowerCase());
      if (add) {
        for (const login of logins) {
          const group = login.startsWith(GROUP_PREFIX) ? login.slice(GROUP_PREFIX.length) : null;
          const exists = group ? await identity.groupExists(group) : await identity.userExists(login);
          if (!exists)
            throw new CargoError(
              group
                ? `could not find a group named \`${group}\` in the AuthService`
                : `could not find a user named \`${login}\` (groups are written \`group:NAME\`)`,
              404,
            );
        }
      }
      await updateJson<CrateMeta>(store, storeKeys.meta(canonicalName(meta.name)), (current) => {
        if (!current) return undefined;
        const users = new Set(current.owners.users);
        const groups = new Set(current.owners.groups);
        for (const login of logins) {
          const isGroup = login.startsWith(GROUP_PREFIX);
          const set = isGroup ? groups : users;
          const value = isGroup ? login.slice(GROUP_PREFIX.length) : login;
          if (add) set.add(value);
          else set.delete(value);
        }
        if (users.size + groups.size === 0)
          throw new CargoError(
            `cannot remove every owner of crate \`${meta.name}\`: add another owner first`,
          );
        return {
          ...current,
          owners: { users: [...users], groups: [...groups] },
          updated: new Date().toISOString(),
        };
      });
      const list = logins.map((l) => `\`${l}\``).join(', ');
      return {
        ok: true,
        msg: add
          ? `${list} added as owner(s) of crate ${meta.name}`
          : `${list} removed from the owners of crate ${meta.name}`,
      };
    };
  app.put<{ Params: { crate: string }; Body: { users: string[] } }>(
    '/api/v1/crates/:crate/owners',
    {
      schema: { params: crateParams, body: ownersBody },
      preValidation: [checkCrateParams, jsonBody],
      config: ownerOnly('cargo.change-owners'),
    },
    changeOwners(true),
  );
  app.delete<{ Params: { crate: string }; Body: { users: string[] } }>(
    '/api/v1/crates/:crate/owners',
    {
      schema: { params: crateParams, body: ownersBody },
      preValidation: [checkCrateParams, jsonBody],
      config: ownerOnly('cargo.change-owners'),
    },
    changeOwners(false),
  );

  app.get<{ Params: { crate: string; version: string } }>(
    '/api/v1/crates/:crate/:version/download',
    { schema: { params: crateParams }, preValidation: checkCrateParams, config: READ },
    async (request, reply) => {
      const { crate, version } = request.params;
      const line = await context.files.version(storeKeys.index(crate), crate, version);
      if (!line) return missing(reply, `crate \`${crate}\` has no version \`${version}\` in this registry`);
      const key = storeKeys.crate(line.name, line.vers, line.cksum);
      // Counted in memory, written in batches (downloads.ts): never a store write per download.
      context.downloads.record(line.name, line.vers);
      // The store decides (store.s3.presignDownloads); fs and disabled S3 answer null.
      const url = await store.presignGet(key, cargo.presignSeconds);
      if (url) return reply.redirect(url, 302);
      const body = await context.files.crate(key);
      if (!body) return missing(reply, `the .crate of \`${crate}@${version}\` is missing from the store`);
      return reply
        .type('application/gzip')
        .header('etag', `"${line.cksum}"`)
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(body);
    },
  );

  async function ownedCrate(name: string): Promise<CrateMeta> {
    const meta = await readMeta(store, name);
    if (!meta) throw new CargoError(`crate \`${name}\` does not exist in this registry`, 404);
    return meta;
  }
}

function missing(reply: FastifyReply, detail: string): FastifyReply {
  return reply.code(404).send({ errors: [{ detail }] });
}
