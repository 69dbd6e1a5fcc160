import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { baseUrl, type CargoContext, READ } from './context.ts';
import { nameFromIndexPath } from './paths.ts';

/**
 * The sparse index at /index/: config.json and one file per crate, served as stored. Every response
 * carries the store's ETag and `Cache-Control: no-cache`, so cargo (and any proxy) revalidates each
 * time and a new version is visible at once, at the cost of a 304.
 */
export async function indexRoutes(app: FastifyInstance, context: CargoContext): Promise<void> {
  const { config } = context;
  app.get('/index/config.json', { config: READ }, async (request, reply) => {
    const base = baseUrl(config, request);
    reply.header('cache-control', 'no-cache');
    return {
      dl: `${base}/api/v1/crates`,
      api: base,
      ...(config.registry.cargo.authRequired ? { 'auth-required': true } : {}),
    };
  });

  // The hottest route (every cargo resolution revalidates every index file): no schema compile step,
  // no auth round trip for a public registry; the path check below bounds the parameter.
  app.get<{ Params: { '*': string } }>('/index/*', { config: READ }, async (request, reply) => {
    const path = request.params['*'];
    if (!nameFromIndexPath(path)) return notFound(reply, path);
    return serveStored(request, reply, context, `cargo/index/${path}`, path);
  });
}

/** One stored index file with ETag revalidation; 404 in cargo's error format when absent. */
export async function serveStored(
  request: FastifyRequest,
  reply: FastifyReply,
  context: CargoContext,
  key: string,
  path: string,
): Promise<FastifyReply> {
  reply.header('cache-control', 'no-cache');
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch) {
    const etag = await context.files.indexEtag(key);
    if (!etag) return notFound(reply, path);
    if (etagMatches(ifNoneMatch, etag)) return reply.code(304).header('etag', etag).send();
  }
  const file = await context.files.index(key);
  if (!file) return notFound(reply, path);
  return reply.header('etag', file.etag).type('text/plain; charset=utf-8').send(file.body);
}

export function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === bare);
}

function notFound(reply: FastifyReply, path: string): FastifyReply {
  return reply
    .code(404)
    .header('cache-control', 'no-cache')
    .send({ errors: [{ detail: `no crate at index path \`${path}\` in this registry` }] });
}
