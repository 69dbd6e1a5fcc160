import { buffer } from 'node:stream/consumers';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkCrateParams } from './api-routes.ts';
import { baseUrl, type CargoContext, READ } from './context.ts';
import {
  bySemverDescending,
  categoryView,
  crateView,
  dependencyView,
  detailsOf,
  keywordView,
  publicUser,
  summarize,
  versionId,
  versionView,
} from './crate-views.ts';
import { type CrateDownloads, day, KEEP_DAYS } from './downloads.ts';
import { CargoError } from './errors.ts';
import type { IndexLine } from './index-file.ts';
import { canonicalName, withoutBuildMetadata } from './names.ts';
import type { CrateMeta } from './owners.ts';
import { ParsedDocs, parseJson } from './parsed-docs.ts';
import { storeKeys } from './paths.ts';
import { searchCatalog } from './search.ts';

const crateParams = {
  type: 'object',
  properties: {
    crate: { type: 'string', maxLength: 64 },
    version: { type: 'string', maxLength: 150 },
  },
  required: ['crate'],
} as const;

/** `?include=` as crates.io takes it on a crate and its downloads: a comma-separated list. */
const includeQuery = {
  type: 'object',
  properties: { include: { type: 'string', maxLength: 200 } },
} as const;

const paging = {
  per_page: { type: 'integer', minimum: 1, maximum: 100 },
  page: { type: 'integer', minimum: 1, maximum: 100_000 },
} as const;

const INCLUDES = ['versions', 'keywords', 'categories', 'badges', 'downloads', 'default_version'] as const;

type CrateRoute = { Params: { crate: string } };
type VersionRoute = { Params: { crate: string; version: string } };
type VersionRequest = FastifyRequest<VersionRoute>;

/** How long a replica reuses its reverse-dependency table (it reads every crate's index file). */
const REVERSE_DEPENDENCIES_TTL_MS = 10_000;

/**
 * crates.io's read API for a crate page and for tools written against crates.io (`crates_io_api`,
 * cargo-edit, the UI): the same paths and JSON shapes, read rules of the index (config.access READ).
 */
export async function crateRoutes(app: FastifyInstance, context: CargoContext): Promise<void> {
  const { store, files, downloads, catalog } = context;
  const route = { schema: { params: crateParams }, preValidation: checkCrateParams, config: READ };
  const docs = new ParsedDocs(store);

  app.get<{ Querystring: { q: string; per_page: number; page: number } }>(
    '/api/v1/crates',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            q: { type: 'string', maxLength: 200, default: '' },
            per_page: { ...paging.per_page, default: 10 },
            page: { ...paging.page, default: 1 },
          },
        },
      },
      config: READ,
    },
    async (request) => {
      const { q, per_page: perPage, page } = request.query;
      const hits = searchCatalog(await catalog.all(), q);
      const slice = hits.slice((page - 1) * perPage, page * perPage);
      const crates = [];
      for (const hit of slice) {
        const crate = await loadCrate(hit.entry.name).catch(() => null);
        if (crate)
          crates.push(crateView(crate.meta, crate.lines, crate.downloads, { exactMatch: hit.exactMatch }));
      }
      const pageLink = (n: number) =>
        `?${new URLSearchParams({ q, per_page: String(perPage), page: String(n) })}`;
      return {
        crates,
        meta: {
          total: hits.length,
          next_page: hits.length > page * perPage ? pageLink(page + 1) : null,
          prev_page: page > 1 ? pageLink(page - 1) : null,
        },
      };
    },
  );

  app.get<{ Params: { crate: string }; Querystring: { include?: string } }>(
    '/api/v1/crates/:crate',
    {
      ...route,
      schema: { params: crateParams, querystring: includeQuery },
    },
    async (request) => {
      const { meta, lines, downloads: counts } = await loadCrate(request.params.crate);
      const include = includes(request.query.include);
      const sorted = bySemverDescending(lines);
      const defaultVersion = summarize(lines).defaultVersion;
      const shown = include.has('versions')
        ? sorted
        : include.has('default_version') && defaultVersion
          ? [defaultVersion]
          : null;
      const crate = crateView(meta, lines, counts, { include: true });
      const catalogEntries = include.has('keywords') || include.has('categories') ? await catalog.all() : [];
      const count = (field: 'keywords' | 'categories', value: string) =>
        catalogEntries.filter((entry) => entry[field].includes(value)).length;
      return {
        crate: {
          ...crate,
          versions: include.has('versions') ? crate.versions : null,
          keywords: include.has('keywords') ? crate.keywords : null,
          categories: include.has('categories') ? crate.categories : null,
          ...(include.has('downloads') ? {} : { recent_downloads: null }),
        },
        versions: shown ? shown.map((line) => versionView(meta, line, counts)) : null,
        keywords: include.has('keywords')
          ? (meta.keywords ?? []).map((k) => keywordView(k, meta.created, count('keywords', k.toLowerCase())))
          : null,
        categories: include.has('categories')
          ? (meta.categories ?? []).map((c) => categoryView(c, meta.created, count('categories', c)))
          : null,
      };
    },
  );

  app.get<{
    Params: { crate: string };
    Querystring: { sort?: 'semver' | 'date'; per_page?: number; page: number };
  }>(
    '/api/v1/crates/:crate/versions',
    {
      ...route,
      schema: {
        params: crateParams,
        querystring: {
          type: 'object',
          properties: {
            sort: { enum: ['semver', 'date'] },
            per_page: paging.per_page,
            page: { ...paging.page, default: 1 },
          },
        },
      },
    },
    async (request) => {
      const { meta, lines, downloads: counts } = await loadCrate(request.params.crate);
      const { sort, per_page: perPage, page } = request.query;
      const sorted =
        sort === 'date'
          ? [...lines].sort((a, b) => (b.pubtime ?? '').localeCompare(a.pubtime ?? ''))
          : bySemverDescending(lines);
      // As crates.io: without `per_page` every version, in one response.
      const slice = perPage === undefined ? sorted : sorted.slice((page - 1) * perPage, page * perPage);
      const more = perPage !== undefined && sorted.length > page * perPage;
      const next = new URLSearchParams({ per_page: String(perPage), page: String(page + 1) });
      if (sort) next.set('sort', sort);
      return {
        versions: slice.map((line) => versionView(meta, line, counts)),
        meta: { total: lines.length, next_page: more ? `?${next}` : null },
      };
    },
  );

  app.get<VersionRoute>('/api/v1/crates/:crate/:version', route, async (request) => {
    const { meta, line, downloads: counts } = await loadVersion(request.params.crate, request.params.version);
    return { version: versionView(meta, line, counts) };
  });

  app.get<VersionRoute>('/api/v1/crates/:crate/:version/dependencies', route, async (request) => {
    const { meta, line } = await loadVersion(request.params.crate, request.params.version);
    const dependencies = line.deps
      .map((dep, index) => dependencyView(meta.name, line.vers, dep, index))
      .sort((a, b) => (a.crate_id < b.crate_id ? -1 : a.crate_id > b.crate_id ? 1 : 0));
    return { dependencies };
  });

  app.get<VersionRoute>('/api/v1/crates/:crate/:version/authors', route, async (request) => {
    const { meta, line } = await loadVersion(request.params.crate, request.params.version);
    return { users: [], meta: { names: detailsOf(meta, line.vers).authors } };
  });

  app.get<VersionRoute>('/api/v1/crates/:crate/:version/downloads', route, async (request) => {
    const { meta, line, downloads: counts } = await loadVersion(request.params.crate, request.params.version);
    const id = versionId(meta.name, line.vers);
    const version_downloads = recentDays(counts)
      .filter(([, perVersion]) => perVersion[line.vers])
      .map(([date, perVersion]) => ({ version: id, downloads: perVersion[line.vers] ?? 0, date }));
    return { version_downloads };
  });

  // crates.io answers a redirect to the rendered file on its static host, or `{url}` to a client
  // that accepts JSON. wharf serves the stored HTML itself (what a redirect-following client gets
  // from crates.io), and points JSON clients at readme.html, which always answers the HTML.
  const sendReadme = (json: boolean) => async (request: VersionRequest, reply: FastifyReply) => {
    const { meta, line } = await loadVersion(request.params.crate, request.params.version);
    const path = `/api/v1/crates/${meta.name}/${line.vers}/readme.html`;
    if (json && wantsJson(request))
      return reply.header('vary', 'accept').send({ url: `${baseUrl(context.config, request)}${path}` });
    const object = detailsOf(meta, line.vers).readme
      ? await store.get(storeKeys.readme(meta.name, line.vers, line.cksum))
      : null;
    if (!object) throw new CargoError(`crate \`${meta.name}@${line.vers}\` has no README`, 404);
    return (
      reply
        .type('text/html; charset=utf-8')
        .header('vary', 'accept')
        // Already sanitized; opened directly in a browser it still runs nothing and loads only images.
        .header(
          'content-security-policy',
          "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; sandbox",
        )
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'private, max-age=3600')
        .header('etag', `"${line.cksum}"`)
        .send(await buffer(object.body))
    );
  };
  app.get<VersionRoute>('/api/v1/crates/:crate/:version/readme', route, sendReadme(true));
  app.get<VersionRoute>('/api/v1/crates/:crate/:version/readme.html', route, sendReadme(false));

  app.get<{ Params: { crate: string }; Querystring: { include?: string } }>(
    '/api/v1/crates/:crate/downloads',
    {
      ...route,
      schema: { params: crateParams, querystring: includeQuery },
    },
    async (request) => {
      const { meta, lines, downloads: counts } = await loadCrate(request.params.crate);
      // As crates.io: the five highest versions day by day, the others summed per day.
      const latest = bySemverDescending(lines).slice(0, 5);
      const shown = new Set(latest.map((l) => l.vers));
      const version_downloads = [];
      const extra_downloads = [];
      for (const [date, perVersion] of recentDays(counts)) {
        let extra = 0;
        for (const line of latest)
          if (perVersion[line.vers])
            version_downloads.push({
              version: versionId(meta.name, line.vers),
              downloads: perVersion[line.vers],
              date,
            });
        for (const [version, n] of Object.entries(perVersion)) if (!shown.has(version)) extra += n;
        if (extra > 0) extra_downloads.push({ date, downloads: extra });
      }
      return {
        version_downloads,
        ...(includes(request.query.include ?? '').has('versions')
          ? { versions: latest.map((line) => versionView(meta, line, counts)) }
          : {}),
        meta: { extra_downloads },
      };
    },
  );

  app.get<CrateRoute>('/api/v1/crates/:crate/owner_user', route, async (request) => {
    const meta = await requireMeta(request.params.crate);
    return { users: meta.owners.users.map((login) => publicUser(login, 'user')) };
  });
  app.get<CrateRoute>('/api/v1/crates/:crate/owner_team', route, async (request) => {
    const meta = await requireMeta(request.params.crate);
    return { teams: meta.owners.groups.map((group) => publicUser(`group:${group}`, 'team')) };
  });

  let reverse: { at: number; table: Promise<Map<string, ReverseDependency[]>> } | null = null;
  app.get<{ Params: { crate: string }; Querystring: { per_page: number; page: number } }>(
    '/api/v1/crates/:crate/reverse_dependencies',
    {
      ...route,
      schema: {
        params: crateParams,
        querystring: {
          type: 'object',
          properties: { per_page: { ...paging.per_page, default: 10 }, page: { ...paging.page, default: 1 } },
        },
      },
    },
    async (request) => {
      const meta = await requireMeta(request.params.crate);
      const { per_page: perPage, page } = request.query;
      if (!reverse || Date.now() - reverse.at > REVERSE_DEPENDENCIES_TTL_MS) {
        const table = reverseDependencies();
        reverse = { at: Date.now(), table };
        table.catch(() => {
          reverse = null;
        });
      }
      const all = (await reverse.table).get(meta.name.toLowerCase()) ?? [];
      const slice = all.slice((page - 1) * perPage, page * perPage);
      const dependencies = [];
      const versions = [];
      for (const entry of slice) {
        const dependent = await loadCrate(entry.dependent).catch(() => null);
        const line = dependent?.lines.find((l) => l.vers === entry.version);
        if (!dependent || !line) continue;
        const dep = line.deps[entry.index];
        if (!dep) continue;
        dependencies.push({
          ...dependencyView(dependent.meta.name, line.vers, dep, entry.index),
          crate_id: meta.name,
          downloads: Object.values(dependent.downloads.versions).reduce((sum, n) => sum + n, 0),
        });
        versions.push(versionView(dependent.meta, line, dependent.downloads));
      }
      return { dependencies, versions, meta: { total: all.length } };
    },
  );

  interface ReverseDependency {
    dependent: string;
    version: string;
    index: number;
  }

  /** Dependency (lower-cased) → the crates whose default version depends on it, by name. */
  async function reverseDependencies(): Promise<Map<string, ReverseDependency[]>> {
    const table = new Map<string, ReverseDependency[]>();
    const entries = [...(await catalog.all())].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const lines = await files.indexLines(storeKeys.index(entry.name));
      const current = lines && summarize(lines).defaultVersion;
      if (!current) continue;
      current.deps.forEach((dep, index) => {
        // Only dependencies on this registry's crates (cargo writes another registry's URL).
        if (dep.registry) return;
        const target = (dep.package ?? dep.name).toLowerCase();
        const list = table.get(target) ?? [];
        if (!list.some((r) => r.dependent === entry.name))
          list.push({ dependent: entry.name, version: current.vers, index });
        table.set(target, list);
      });
    }
    return table;
  }

  async function requireMeta(name: string): Promise<CrateMeta> {
    const meta = await docs.read<CrateMeta>(storeKeys.meta(canonicalName(name)), parseJson);
    if (!meta) throw new CargoError(`crate \`${name}\` does not exist in this registry`, 404);
    return meta;
  }

  async function loadCrate(
    name: string,
  ): Promise<{ meta: CrateMeta; lines: IndexLine[]; downloads: CrateDownloads }> {
    const meta = await requireMeta(name);
    const [lines, counts] = await Promise.all([
      files.indexLines(storeKeys.index(meta.name)),
      downloads.read(meta.name),
    ]);
    if (!lines || lines.length === 0)
      throw new CargoError(`crate \`${name}\` does not exist in this registry`, 404);
    return { meta, lines, downloads: counts };
  }

  async function loadVersion(name: string, version: string) {
    const crate = await loadCrate(name);
    const line =
      crate.lines.find((l) => l.vers === version) ??
      crate.lines.find((l) => withoutBuildMetadata(l.vers) === withoutBuildMetadata(version));
    if (!line)
      throw new CargoError(`crate \`${crate.meta.name}\` does not have a version \`${version}\``, 404);
    return { ...crate, line };
  }
}

/** `?include=` as crates.io reads it: absent means everything. */
function includes(include: string | undefined): Set<string> {
  if (include === undefined) return new Set(INCLUDES);
  return new Set(
    include
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  );
}

function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  return (Array.isArray(accept) ? accept.join(',') : (accept ?? '')).includes('json');
}

/** The last 90 days that have downloads, oldest first. */
function recentDays(counts: CrateDownloads, now = Date.now()): [string, Record<string, number>][] {
  const oldest = day(now - KEEP_DAYS * 86_400_000);
  return Object.entries(counts.days)
    .filter(([date]) => date >= oldest)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
