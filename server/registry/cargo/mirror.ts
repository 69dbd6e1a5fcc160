import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { readJson } from '../../store/json-doc.ts';
import { SingleFlight } from '../single-flight.ts';
import { checkCrateParams } from './api-routes.ts';
import { baseUrl, type CargoContext, READ } from './context.ts';
import { parseIndexFile } from './index-file.ts';
import { etagMatches } from './index-routes.ts';
import { indexPath, nameFromIndexPath, storeKeys } from './paths.ts';

/** An upstream index file as cached: the upstream's bytes, verbatim (never re-serialized). */
interface CachedIndexFile {
  body: string;
  upstreamEtag: string | null;
  upstreamLastModified: string | null;
  fetchedAt: number;
}

/** The mirror could not get an answer from upstream; nothing was cached. */
export class UpstreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/** Where an answer came from, for wharf_cargo_mirror_requests_total. */
type MirrorResult = 'hit' | 'revalidated' | 'stale' | 'miss';

type IndexAnswer =
  | { kind: 'file'; file: CachedIndexFile; result: MirrorResult }
  | { kind: 'missing'; result: MirrorResult };

/**
 * A read-through mirror of an upstream sparse index (crates.io by default), usable as cargo source
 * replacement: index files fetched on demand and revalidated with the upstream's ETag after
 * `indexTtlSeconds`; .crate files fetched once, stored only after their SHA-256 matches the index
 * line, and served from the store afterwards. Concurrent first requests share one upstream fetch.
 */
export async function mirrorRoutes(app: FastifyInstance, context: CargoContext): Promise<void> {
  const { config, store, logger } = context;
  const mirror = config.registry.cargo.mirror;
  const upstream = mirror.upstreamIndex.endsWith('/') ? mirror.upstreamIndex : `${mirror.upstreamIndex}/`;
  const indexFlights = new SingleFlight<IndexAnswer>();
  const crateFlights = new SingleFlight<Buffer>();
  let downloadTemplate: Promise<string> | null = null;

  // As cargo does: the token goes to the index, and to downloads elsewhere only when the upstream's
  // config.json says `auth-required` (crates.io's CDN never sees it).
  let downloadsNeedToken = false;
  const sendsToken = (url: string) =>
    mirror.upstreamToken !== undefined &&
    (new URL(url).origin === new URL(upstream).origin || downloadsNeedToken);

  const upstreamFetch = async (url: string, headers: Record<string, string> = {}): Promise<Response> => {
    const what = url.endsWith('/config.json') ? 'config' : url.startsWith(upstream) ? 'index' : 'crate';
    try {
      const response = await fetch(url, {
        headers: sendsToken(url) ? { ...headers, authorization: mirror.upstreamToken as string } : headers,
        signal: AbortSignal.timeout(mirror.upstreamTimeoutSeconds * 1000),
      });
      context.cargoMetrics.upstream.inc({ what, outcome: String(response.status) });
      return response;
    } catch (error) {
      context.cargoMetrics.upstream.inc({ what, outcome: 'error' });
      throw new UpstreamError(`the upstream registry did not answer for ${url}: ${(error as Error).message}`);
    }
  };

  async function indexFile(path: string): Promise<IndexAnswer> {
    const key = storeKeys.mirrorIndex(path);
    const cached = await readJson<CachedIndexFile>(store, key);
    if (cached && Date.now() - cached.value.fetchedAt < mirror.indexTtlSeconds * 1000)
      return { kind: 'file', file: cached.value, result: 'hit' };
    return indexFlights.run(path, async () => {
      const headers: Record<string, string> = {};
      if (cached?.value.upstreamEtag) headers['if-none-match'] = cached.value.upstreamEtag;
      else if (cached?.value.upstreamLastModified)
        headers['if-modified-since'] = cached.value.upstreamLastModified;
      let response: Response;
      try {
        response = await upstreamFetch(`${upstream}${path}`, headers);
      } catch (error) {
        // Upstream down: a copy we already have beats an error (cargo cannot build offline otherwise).
        if (cached) {
          logger.warn({ err: error, path }, 'upstream index unreachable; serving the cached copy');
          return { kind: 'file', file: cached.value, result: 'stale' };
        }
        throw error;
      }
      if (response.status === 304 && cached) {
        await response.body?.cancel();
        const file = { ...cached.value, fetchedAt: Date.now() };
        await store.put(key, JSON.stringify(file), { contentType: 'application/json' });
        return { kind: 'file', file, result: 'revalidated' };
      }
      if (response.status === 404 || response.status === 410 || response.status === 451) {
        await response.body?.cancel();
        if (cached) await store.delete(key);
        return { kind: 'missing', result: 'miss' };
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        if (cached) {
          logger.warn({ status: response.status, path }, 'upstream index failed; serving the cached copy');
          return { kind: 'file', file: cached.value, result: 'stale' };
        }
        throw new UpstreamError(`the upstream registry answered ${response.status} for ${upstream}${path}`);
      }
      const body = await response.text().catch((error: Error) => {
        throw new UpstreamError(`the upstream registry broke off ${upstream}${path}: ${error.message}`);
      });
      parseIndexFile(body); // refuse to cache what cargo could not read
      const file: CachedIndexFile = {
        body,
        upstreamEtag: response.headers.get('etag'),
        upstreamLastModified: response.headers.get('last-modified'),
        fetchedAt: Date.now(),
      };
      await store.put(key, JSON.stringify(file), { contentType: 'application/json' });
      return { kind: 'file', file, result: 'miss' };
    });
  }

  /** The index answer for a request to /mirror/index/, counted by where it came from. */
  async function servedIndexFile(path: string): Promise<IndexAnswer> {
    let result: MirrorResult = 'miss'; // an upstream failure with nothing cached
    try {
      const answer = await indexFile(path);
      result = answer.result;
      return answer;
    } finally {
      context.cargoMetrics.mirror.inc({ what: 'index', result });
    }
  }

  app.get('/mirror/index/config.json', { config: READ }, async (request, reply) => {
    reply.header('cache-control', 'no-cache');
    return {
      dl: `${baseUrl(config, request)}/ktra/api/v1/mirror`,
      ...(config.registry.cargo.authRequired ? { 'auth-required': true } : {}),
    };
  });

  app.get<{ Params: { '*': string } }>(
    '/mirror/index/*',
    {
      schema: { params: { type: 'object', properties: { '*': { type: 'string', maxLength: 200 } } } },
      config: READ,
    },
    async (request, reply) => {
      const path = request.params['*'];
      reply.header('cache-control', 'no-cache');
      if (!nameFromIndexPath(path)) return notFound(reply, `no crate at index path \`${path}\``);
      const answer = await servedIndexFile(path);
      if (answer.kind === 'missing')
        return notFound(reply, `the upstream registry has no crate at \`${path}\``);
      const etag = `"${createHash('sha256').update(answer.file.body).digest('hex').slice(0, 32)}"`;
      const ifNoneMatch = request.headers['if-none-match'];
      if (ifNoneMatch && etagMatches(ifNoneMatch, etag)) return reply.code(304).header('etag', etag).send();
      return reply.header('etag', etag).type('text/plain; charset=utf-8').send(answer.file.body);
    },
  );

  app.get<{ Params: { crate: string; version: string } }>(
    '/ktra/api/v1/mirror/:crate/:version/download',
    {
      schema: {
        params: { type: 'object', properties: { crate: { type: 'string' }, version: { type: 'string' } } },
      },
      preValidation: checkCrateParams,
      config: READ,
    },
    async (request, reply) => {
      const { crate, version } = request.params;
      const path = indexPath(crate);
      if (!nameFromIndexPath(path)) return notFound(reply, `\`${crate}\` is not a crate name`);
      const answer = await indexFile(path);
      const line =
        answer.kind === 'file'
          ? parseIndexFile(answer.file.body).find(
              (l) => l.vers === version && l.name.toLowerCase() === crate.toLowerCase(),
            )
          : undefined;
      if (!line) return notFound(reply, `the upstream registry has no \`${crate}@${version}\``);
      const key = storeKeys.mirrorCrate(line.name, line.vers, line.cksum);
      const stored = await store.get(key);
      context.cargoMetrics.mirror.inc({ what: 'crate', result: stored ? 'hit' : 'miss' });
      if (stored)
        return reply.type('application/gzip').header('content-length', stored.size).send(stored.body);
      const bytes = await crateFlights.run(key, async () => {
        const url = expandTemplate(await template(), line.name, line.vers, line.cksum);
        const response = await upstreamFetch(url);
        if (response.status !== 200) {
          await response.body?.cancel();
          throw new UpstreamError(`the upstream registry answered ${response.status} for ${url}`);
        }
        const body = Buffer.from(
          await response.arrayBuffer().catch((error: Error) => {
            throw new UpstreamError(`the upstream registry broke off ${url}: ${error.message}`);
          }),
        );
        const cksum = createHash('sha256').update(body).digest('hex');
        if (cksum !== line.cksum)
          throw new UpstreamError(
            `the upstream .crate of \`${line.name}@${line.vers}\` does not match the index checksum (got ${cksum}, expected ${line.cksum}); not cached`,
          );
        await store.put(key, body, { contentType: 'application/gzip', contentLength: body.length });
        return body;
      });
      return reply.type('application/gzip').send(bytes);
    },
  );

  /** Where upstream .crate files are: the configured override, else the upstream config.json's `dl`. */
  function template(): Promise<string> {
    if (mirror.upstreamDownload) return Promise.resolve(mirror.upstreamDownload);
    downloadTemplate ??= upstreamConfig(upstream, upstreamFetch).then(
      (config) => {
        downloadsNeedToken = config.authRequired;
        return config.dl;
      },
      (error: unknown) => {
        downloadTemplate = null;
        throw error;
      },
    );
    return downloadTemplate;
  }
}

async function upstreamConfig(
  upstream: string,
  upstreamFetch: (url: string) => Promise<Response>,
): Promise<{ dl: string; authRequired: boolean }> {
  const response = await upstreamFetch(`${upstream}config.json`);
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new UpstreamError(`the upstream registry answered ${response.status} for ${upstream}config.json`);
  }
  const config = (await response.json().catch(() => null)) as {
    dl?: unknown;
    'auth-required'?: unknown;
  } | null;
  if (!config || typeof config.dl !== 'string')
    throw new UpstreamError(`the upstream ${upstream}config.json has no \`dl\``);
  return { dl: config.dl, authRequired: config['auth-required'] === true };
}

/** cargo's `dl` template rules (registry-index.md); without markers, `/{crate}/{version}/download` is appended. */
export function expandTemplate(dl: string, crate: string, version: string, cksum: string): string {
  const markers = ['{crate}', '{version}', '{prefix}', '{lowerprefix}', '{sha256-checksum}'];
  if (!markers.some((m) => dl.includes(m))) return `${dl.replace(/\/+$/, '')}/${crate}/${version}/download`;
  const prefix = indexPath(crate).split('/').slice(0, -1).join('/');
  const realPrefix =
    crate.length <= 2
      ? `${crate.length}`
      : crate.length === 3
        ? `3/${crate[0]}`
        : `${crate.slice(0, 2)}/${crate.slice(2, 4)}`;
  return dl
    .replaceAll('{crate}', crate)
    .replaceAll('{version}', version)
    .replaceAll('{prefix}', realPrefix)
    .replaceAll('{lowerprefix}', prefix)
    .replaceAll('{sha256-checksum}', cksum);
}

function notFound(reply: FastifyReply, detail: string): FastifyReply {
  return reply.code(404).send({ errors: [{ detail }] });
}
