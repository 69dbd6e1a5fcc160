import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WharfConfig } from '../config/types.ts';
import { publicBaseUrl } from '../http/proxies.ts';
import { openIdProviderSource } from '../registry/openid-providers.ts';

/** Where `npm run build` puts the UI (vite, web/vite.config.ts): dist/web beside dist/server. */
export function defaultUiDirectory(): string {
  // Compiled, this module is dist/server/web/plugin.js; run from its sources, server/web/plugin.ts.
  const compiled = import.meta.url.endsWith('.js');
  return fileURLToPath(new URL(compiled ? '../../web/' : '../../dist/web/', import.meta.url));
}

/** The UI's own prefix: client routes and assets, clear of every API path (/v2/, /api/v1/, /index/, /me…). */
export const UI_PREFIX = '/ui';

/**
 * Scripts and styles only from this origin (no inline code), nothing framed, no plugins; images
 * may be data: URLs (the crate README's sanitized HTML loads no remote content).
 */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-cache',
  'content-security-policy': UI_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

/** A browser navigating (it asks for HTML); cargo, docker, skopeo and API clients never do. */
export function wantsHtml(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/html');
}

/**
 * The web UI (web/): hashed assets under /ui/assets/ cached for a year, and index.html (never
 * cached, so a new release is picked up at once) for browser navigations to `/` and any `/ui/…`
 * client route, so every page deep-links. Any other request to those paths gets the ordinary 404
 * of the server. Without a built UI (sources run before `npm run build`) only a warning is logged.
 */
export async function webUi(
  app: FastifyInstance,
  options: { config: WharfConfig; directory?: string },
): Promise<void> {
  const root = options.directory ?? defaultUiDirectory();
  if (!existsSync(`${root}/index.html`)) {
    app.log.warn({ directory: root }, 'the web UI is not built (npm run build): browsers get no UI');
    return;
  }
  const index = await readFile(`${root}/index.html`);
  const { config } = options;
  const openIdProviders = openIdProviderSource(config);

  await app.register(fastifyStatic, {
    root: `${root}/assets`,
    prefix: `${UI_PREFIX}/assets/`,
    decorateReply: false,
    index: false,
    // The build writes .br and .gz beside each asset (web/vite.config.ts): sent as they are.
    preCompressed: true,
    // Names carry a hash of their content: a changed file is a new URL.
    immutable: true,
    maxAge: '365d',
    setHeaders: (reply) => reply.header('x-content-type-options', 'nosniff'),
  });

  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!wantsHtml(request)) return reply.callNotFound();
    return reply.code(200).headers(PAGE_HEADERS).send(index);
  };
  app.get('/', page);
  app.get(UI_PREFIX, page);
  app.get(`${UI_PREFIX}/*`, page);

  /** What the UI shows in commands and offers at sign-in; read at start by the UI. */
  app.get(`${UI_PREFIX}/settings.json`, async (request, reply) => {
    const baseUrl = publicBaseUrl(config.publicUrl, request);
    reply.header('cache-control', 'no-cache');
    return {
      baseUrl,
      registryHost: new URL(baseUrl).host,
      openidProviders: (await openIdProviders()).map((provider) => provider.name),
      protocols: config.registry.protocols,
    };
  });
}
