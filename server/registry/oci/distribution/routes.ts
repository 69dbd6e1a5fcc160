import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { requestErrorStatus } from '../../../http/request-errors.ts';
import { sendObject } from '../../../http/send-object.ts';
import { STREAMED_BODY } from '../../../http/timeouts.ts';
import { InvalidRangeError } from '../../../store/object-store.ts';
import { OciError, sendOciError } from '../errors.ts';
import { isRepositoryName, parseDigest, TAG } from '../names.ts';
import type { OciServices } from '../services.ts';
import type { BlobLink } from '../storage/blobs.ts';
import type { StoredManifest } from '../storage/manifests.ts';
import { type Caller, challenge, identify, mayRead, requireRepository } from './guard.ts';

type Route =
  | { kind: 'ping' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'referrers'; name: string; digest: string };

/** Splits a /v2/ path; repository names contain `/`, so the suffix decides the route. */
function route(path: string): Route | null {
  if (path === '') return { kind: 'ping' };
  if (path === '_catalog') return { kind: 'catalog' };
  let match = /^(.+)\/tags\/list$/.exec(path);
  if (match) return { kind: 'tags', name: match[1] as string };
  match = /^(.+)\/blobs\/uploads\/?$/.exec(path);
  if (match) return { kind: 'uploads', name: match[1] as string };
  match = /^(.+)\/blobs\/uploads\/([^/]+)$/.exec(path);
  if (match) return { kind: 'upload', name: match[1] as string, id: match[2] as string };
  match = /^(.+)\/manifests\/([^/]+)$/.exec(path);
  if (match) return { kind: 'manifest', name: match[1] as string, reference: match[2] as string };
  match = /^(.+)\/blobs\/([^/]+)$/.exec(path);
  if (match) return { kind: 'blob', name: match[1] as string, digest: match[2] as string };
  match = /^(.+)\/referrers\/([^/]+)$/.exec(path);
  if (match) return { kind: 'referrers', name: match[1] as string, digest: match[2] as string };
  return null;
}

const API_VERSION = { 'Docker-Distribution-Api-Version': 'registry/2.0' };

/**
 * The OCI Distribution API v1.1 (/v2/). Bodies are never parsed by Fastify: blobs stream from the
 * socket into the store, manifests are read up to `maxManifestBytes`.
 */
export async function distributionRoutes(
  app: FastifyInstance,
  { services }: { services: OciServices },
): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
  // What reaches here was raised by Fastify about the request (or rethrown by internalError).
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = requestErrorStatus(error);
    if (status === null) return internalError(request, reply, error);
    const code = status === 413 ? 'SIZE_INVALID' : status === 503 ? 'UNKNOWN' : 'UNSUPPORTED';
    return sendOciError(reply.headers(API_VERSION), new OciError(code, error.message, { status }));
  });

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
    url: '/v2/*',
    exposeHeadRoute: false,
    config: STREAMED_BODY,
    schema: { params: { type: 'object', properties: { '*': { type: 'string' } } } },
    handler: async (request, reply) => {
      reply.headers(API_VERSION);
      try {
        // Fastify has already percent-decoded the wildcard: decoding again would turn `%25` into `%`.
        const path = (request.params as { '*': string })['*'].replace(/\/$/, '');
        const target = route(path);
        if (!target) throw new OciError('NAME_INVALID', 'unknown route', { status: 404 });
        const caller = await identify(services, request);
        return await dispatch(services, request, reply, target, caller);
      } catch (error) {
        drain(request.raw);
        if (error instanceof OciError) return sendOciError(reply, error);
        if (error instanceof InvalidRangeError) {
          return sendOciError(reply, new OciError('RANGE_INVALID', 'range not satisfiable', { status: 416 }));
        }
        return internalError(request, reply, error);
      }
    },
  });
  app.get('/v2', async (request, reply) => {
    reply.headers(API_VERSION);
    try {
      const caller = await identify(services, request);
      return await dispatch(services, request, reply, { kind: 'ping' }, caller);
    } catch (error) {
      if (error instanceof OciError) return sendOciError(reply, error);
      return internalError(request, reply, error);
    }
  });
}

/**
 * A failure of the registry itself: logged in full, answered in the spec's error format without
 * the internal message (it can name files and hosts). Errors Fastify raised for the request (a
 * body over its limit, a client gone) keep their own 4xx answer.
 */
function internalError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  if (requestErrorStatus(error as FastifyError) !== null) throw error;
  // The client went away or its body timed out (server/http/timeouts.ts): a client error, not ours.
  if (request.raw.destroyed && !request.raw.complete) {
    request.log.info({ err: error }, 'OCI request body cut short');
    return sendOciError(reply, new OciError('BLOB_UPLOAD_INVALID', 'the request body was cut short'));
  }
  request.log.error({ err: error }, 'OCI request failed');
  return sendOciError(reply, new OciError('UNKNOWN', 'the registry failed to handle the request'));
}

async function dispatch(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  target: Route,
  caller: Caller,
): Promise<unknown> {
  const method = request.method;
  if (target.kind === 'ping') {
    if (method !== 'GET' && method !== 'HEAD') throw unsupported();
    // `/v2/` asks for any valid credential; the challenge carries no scope (zot#1125).
    if (!caller.hasToken) throw challenge(services, request, null);
    return reply.send({});
  }
  if (target.kind === 'catalog') return catalog(services, request, reply, caller);
  const name = target.name;
  if (!isRepositoryName(name))
    throw new OciError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  const query = request.query as Record<string, string | string[] | undefined>;
  switch (target.kind) {
    case 'tags':
      if (method !== 'GET' && method !== 'HEAD') throw unsupported();
      await requireRepository(services, request, caller, name, ['pull']);
      return tagList(services, request, reply, name);
    case 'referrers': {
      if (method !== 'GET') throw unsupported();
      await requireRepository(services, request, caller, name, ['pull']);
      const digest = parseDigest(target.digest);
      if (!digest) throw new OciError('DIGEST_INVALID', 'invalid digest');
      let manifests = await services.manifests.referrers(name, digest);
      const artifactType = single(query.artifactType);
      if (artifactType !== undefined) {
        manifests = manifests.filter((descriptor) => descriptor.artifactType === artifactType);
        reply.header('OCI-Filters-Applied', 'artifactType');
      }
      return reply.type('application/vnd.oci.image.index.v1+json').send(
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.index.v1+json',
            manifests,
          }),
        ),
      );
    }
    case 'manifest':
      return manifest(services, request, reply, caller, name, target.reference);
    case 'blob':
      return blob(services, request, reply, caller, name, target.digest);
    case 'uploads':
      if (method !== 'POST') throw unsupported();
      return startUpload(services, request, reply, caller, name);
    case 'upload':
      return upload(services, request, reply, caller, name, target.id);
  }
}

async function manifest(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  caller: Caller,
  name: string,
  reference: string,
): Promise<unknown> {
  const isDigest = reference.includes(':');
  if (!isDigest && !TAG.test(reference))
    throw new OciError('MANIFEST_INVALID', 'invalid tag', { status: 400 });
  const digest = isDigest ? parseDigest(reference) : null;
  if (isDigest && !digest) throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest');
  switch (request.method) {
    case 'GET':
    case 'HEAD': {
      await requireRepository(services, request, caller, name, ['pull']);
      const proxy = services.proxies.of(name);
      let found: StoredManifest | null;
      if (proxy) {
        // Pulls through a proxy are recorded by tag too: its GC goes by last pull.
        const proxied = await proxy.manifest(name, reference);
        found = proxied.manifest;
        if (proxied.warning) reply.header('Warning', proxied.warning);
      } else {
        found = await services.manifests.get(name, reference);
        if (!found) throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
        if (digest) services.pulls.record(name, found.digest); // GC keeps what is pulled by digest
      }
      reply
        .type(found.mediaType)
        .header('Docker-Content-Digest', found.digest.text)
        .header('ETag', `"${found.digest.text}"`)
        .header('Content-Length', found.size);
      return request.method === 'HEAD' ? reply.send() : reply.send(found.body);
    }
    case 'PUT': {
      await requireRepository(services, request, caller, name, ['push']);
      const body = await readLimited(
        request.raw,
        services.settings.maxManifestBytes,
        declaredLength(request),
      );
      const contentType = request.headers['content-type']?.split(';')[0]?.trim();
      const extraTags = list(request.query as Record<string, unknown>, 'tag');
      for (const tag of extraTags) if (!TAG.test(tag)) throw new OciError('MANIFEST_INVALID', 'invalid tag');
      // The repository record appears with the first thing actually pushed into it, not before.
      const result = await services.manifests.put(
        name,
        digest ? { digest } : { tag: reference },
        body,
        contentType,
        () => services.repositories.ensure(name),
      );
      for (const tag of extraTags)
        await services.manifests.put(name, { tag, digest: result.digest }, body, contentType);
      if (extraTags.length > 0) reply.header('OCI-Tag', extraTags.join(', '));
      if (result.subject) reply.header('OCI-Subject', result.subject.text);
      return reply
        .code(201)
        .header('Location', `/v2/${name}/manifests/${result.digest.text}`)
        .header('Docker-Content-Digest', result.digest.text)
        .send();
    }
    case 'DELETE': {
      await requireRepository(services, request, caller, name, ['delete']);
      const deleted = digest
        ? await services.manifests.deleteManifest(name, digest)
        : await services.manifests.deleteTag(name, reference);
      if (!deleted) throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
      return reply.code(202).send();
    }
    default:
      throw unsupported();
  }
}

async function blob(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  caller: Caller,
  name: string,
  digestText: string,
): Promise<unknown> {
  const digest = parseDigest(digestText);
  if (request.method === 'DELETE') {
    await requireRepository(services, request, caller, name, ['delete']);
    if (!digest) throw new OciError('DIGEST_INVALID', 'invalid digest');
    if (!(await services.blobs.unlink(name, digest))) throw new OciError('BLOB_UNKNOWN', 'blob unknown');
    return reply.code(202).send();
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') throw unsupported();
  await requireRepository(services, request, caller, name, ['pull']);
  if (!digest) throw new OciError('DIGEST_INVALID', 'invalid digest');
  reply
    .type('application/octet-stream')
    .header('Docker-Content-Digest', digest.text)
    .header('ETag', `"${digest.text}"`)
    .header('Accept-Ranges', 'bytes');
  const proxy = services.proxies.of(name);
  let link: BlobLink | null;
  if (proxy) {
    const mode = request.method === 'HEAD' ? 'head' : request.headers.range ? 'whole' : 'stream';
    const proxied = await proxy.blob(name, digest, mode);
    if (proxied.kind === 'remote') return reply.header('Content-Length', proxied.size).send();
    if (proxied.kind === 'streaming') {
      // This client's request started the upstream fetch: it reads along while the store is written.
      if (proxied.size !== undefined) {
        reply.header('Content-Length', proxied.size);
        services.proxyMetrics.servedBytes.inc({ proxy: proxy.settings.namespace }, proxied.size);
      }
      return reply.send(proxied.body);
    }
    link = proxied.link;
    if (request.method === 'GET')
      services.proxyMetrics.servedBytes.inc({ proxy: proxy.settings.namespace }, link.size);
  } else {
    link = await services.blobs.linked(name, digest);
  }
  if (!link) throw new OciError('BLOB_UNKNOWN', 'blob unknown', { detail: { digest: digest.text } });
  const range = parseRange(request.headers.range, link.size);
  if (request.method === 'HEAD') {
    return reply.header('Content-Length', link.size).send();
  }
  if (!range) {
    // On S3 with presigned downloads, the bytes come straight from the bucket (clients follow 307).
    const url = await services.store.presignGet(link.dataKey, 600);
    if (url) return reply.code(307).header('Location', url).header('Content-Length', 0).send();
  }
  const data =
    (await services.blobCache?.read(digest, link, range, reply.raw)) ??
    (await services.blobs.read(link, range ? { range } : {}));
  if (!data) throw new OciError('BLOB_UNKNOWN', 'blob unknown', { detail: { digest: digest.text } });
  const start = data.range?.start ?? 0;
  const end = data.range?.end ?? data.size - 1;
  if (range) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${link.size}`);
  reply.header('Content-Length', link.size === 0 ? 0 : end - start + 1);
  return sendObject(reply, data);
}

async function startUpload(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  caller: Caller,
  name: string,
): Promise<unknown> {
  await requireRepository(services, request, caller, name, ['push']);
  const query = request.query as Record<string, string | string[] | undefined>;
  const mount = single(query.mount);
  const from = single(query.from);
  if (mount !== undefined) {
    const digest = parseDigest(mount);
    // With `from`, that repository; without, any repository holding the blob that the caller may read.
    const sources = !digest
      ? []
      : from !== undefined
        ? [from]
        : await services.blobs.repositoriesWith(digest);
    for (const source of sources) {
      if (!digest || !isRepositoryName(source) || !(await mayRead(services, caller, source))) continue;
      const link = await services.blobs.linked(source, digest, { fresh: true });
      if (link) {
        await services.repositories.ensure(name);
        await services.blobs.link(name, digest, link);
        drain(request.raw);
        return blobCreated(reply, name, digest.text);
      }
    }
  }
  const digestText = single(query.digest);
  if (digestText !== undefined) {
    const digest = parseDigest(digestText);
    if (!digest) throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest');
    const pointer = await services.uploads.monolithic(digest, request.raw);
    await services.repositories.ensure(name);
    await services.blobs.link(name, digest, pointer);
    return blobCreated(reply, name, digest.text);
  }
  drain(request.raw);
  const state = await services.uploads.start(name);
  return reply
    .code(202)
    .header('Location', `/v2/${name}/blobs/uploads/${state.id}`)
    .header('Docker-Upload-UUID', state.id)
    .header('Range', '0-0')
    .header('OCI-Chunk-Min-Length', 1)
    .send();
}

async function upload(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  caller: Caller,
  name: string,
  id: string,
): Promise<unknown> {
  const method = request.method;
  await requireRepository(services, request, caller, name, method === 'GET' ? ['pull'] : ['push']);
  const location = `/v2/${name}/blobs/uploads/${id}`;
  switch (method) {
    case 'GET': {
      const { value: state } = await services.uploads.state(name, id);
      return reply
        .code(204)
        .header('Location', location)
        .header('Range', `0-${Math.max(0, state.offset - 1)}`)
        .header('Docker-Upload-UUID', id)
        .send();
    }
    case 'PATCH': {
      const range = chunkRange(request);
      const state = await services.uploads.append(
        name,
        id,
        request.raw,
        range?.start,
        declaredLength(request),
        range?.length,
      );
      return reply
        .code(202)
        .header('Location', location)
        .header('Range', `0-${Math.max(0, state.offset - 1)}`)
        .header('Docker-Upload-UUID', id)
        .send();
    }
    case 'PUT': {
      const digestText = single((request.query as Record<string, string | undefined>).digest);
      const digest = digestText ? parseDigest(digestText) : null;
      if (!digest) {
        throw new OciError('DIGEST_INVALID', 'a supported digest query parameter is required');
      }
      const range = chunkRange(request);
      if (range) {
        const { value: state } = await services.uploads.state(name, id);
        if (range.start !== state.offset) {
          throw new OciError('BLOB_UPLOAD_INVALID', 'chunk out of order', {
            status: 416,
            headers: { Location: location, Range: `0-${Math.max(0, state.offset - 1)}` },
          });
        }
      }
      const hasBody =
        Number(request.headers['content-length'] ?? 0) > 0 ||
        request.headers['transfer-encoding'] !== undefined;
      const pointer = await services.uploads.complete(
        name,
        id,
        digest,
        hasBody || range ? request.raw : null,
        declaredLength(request),
        range?.length,
      );
      await services.repositories.ensure(name);
      await services.blobs.link(name, digest, pointer);
      return blobCreated(reply, name, digest.text);
    }
    case 'DELETE':
      await services.uploads.cancel(name, id);
      return reply.code(204).send();
    default:
      throw unsupported();
  }
}

async function tagList(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  name: string,
): Promise<unknown> {
  const query = request.query as Record<string, string | undefined>;
  const repository = await services.repositories.get(name);
  let tags = (await services.manifests.tags(name)).sort();
  if (!repository && tags.length === 0)
    throw new OciError('NAME_UNKNOWN', 'repository unknown', { detail: { name } });
  const last = single(query.last);
  if (last !== undefined) tags = tags.filter((tag) => tag > last);
  const n = query.n !== undefined ? Number(query.n) : undefined;
  if (n !== undefined && Number.isInteger(n) && n >= 0 && tags.length > n) {
    tags = tags.slice(0, n);
    const lastTag = tags.at(-1);
    if (lastTag)
      reply.header('Link', `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(lastTag)}>; rel="next"`);
  }
  return reply.send({ name, tags });
}

async function catalog(
  services: OciServices,
  request: FastifyRequest,
  reply: FastifyReply,
  caller: Caller,
): Promise<unknown> {
  if (request.method !== 'GET') throw unsupported();
  const granted = caller.access.get('registry:catalog');
  if (!granted?.has('*')) throw challenge(services, request, 'registry:catalog:*', caller.hasToken);
  const query = request.query as Record<string, string | undefined>;
  const last = single(query.last);
  const n = query.n !== undefined ? Number(query.n) : 100;
  const limit = Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : 100;
  const visible: string[] = [];
  let more = false;
  for (const name of await services.repositories.names()) {
    if (last !== undefined && name <= last) continue;
    if (!(await mayRead(services, caller, name))) continue;
    if (visible.length === limit) {
      more = true;
      break;
    }
    visible.push(name);
  }
  if (more) {
    reply.header(
      'Link',
      `</v2/_catalog?n=${limit}&last=${encodeURIComponent(visible.at(-1) as string)}>; rel="next"`,
    );
  }
  return reply.send({ repositories: visible });
}

function blobCreated(reply: FastifyReply, name: string, digest: string): FastifyReply {
  return reply
    .code(201)
    .header('Location', `/v2/${name}/blobs/${digest}`)
    .header('Docker-Content-Digest', digest)
    .send();
}

function parseRange(header: string | undefined, size: number): { start: number; end?: number } | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  if (match[1] === '' && match[2] !== '') {
    const suffix = Number(match[2]);
    return { start: Math.max(0, size - suffix) };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? undefined : Math.min(Number(match[2]), size - 1);
  if (end !== undefined && end < start) throw new OciError('RANGE_INVALID', 'invalid range', { status: 416 });
  return end === undefined ? { start } : { start, end };
}

/** Reads a manifest, refusing it from its Content-Length or at the limit, never buffering past it. */
async function readLimited(stream: IncomingMessage, limit: number, declared?: number): Promise<Buffer> {
  const tooLarge = () => new OciError('SIZE_INVALID', `manifest larger than ${limit} bytes`, { status: 413 });
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Lets an unread request body flow away so the connection can be reused. */
function drain(stream: IncomingMessage): void {
  if (!stream.readableEnded && !stream.destroyed) stream.resume();
}

/**
 * A chunk's `Content-Range` (`start-end`, inclusive; `bytes start-end` also taken): undefined when
 * absent. Malformed or backwards is 416, as an out-of-order chunk; a Content-Length that disagrees
 * with it is SIZE_INVALID (distribution's answer). A chunked body is held to the range as it streams.
 */
function chunkRange(request: FastifyRequest): { start: number; length: number } | undefined {
  const header = request.headers['content-range'];
  if (header === undefined) return undefined;
  const match = /^(?:bytes )?(\d+)-(\d+)$/.exec(header.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start)
    throw new OciError('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { status: 416 });
  const length = end - start + 1;
  const declared = declaredLength(request);
  if (declared !== undefined && declared !== length)
    throw new OciError('SIZE_INVALID', `Content-Range ${header} does not match Content-Length ${declared}`, {
      detail: { range: header, contentLength: declared },
    });
  return { start, length };
}

function declaredLength(request: FastifyRequest): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined || request.headers['transfer-encoding'] !== undefined) return undefined;
  const length = Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function list(query: Record<string, unknown>, name: string): string[] {
  const value = query[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

function unsupported(): OciError {
  return new OciError('UNSUPPORTED', 'method not supported here', { status: 405 });
}
