import type { FastifyError, FastifyInstance } from 'fastify';
import { AUTHENTICATE, needsCredentials, routeDecision } from '../../access/route-access.ts';
import { parseAuthorization } from '../../http/authorization.ts';
import { isBodyTooLarge } from '../../http/body-limits.ts';
import { requestErrorStatus } from '../../http/request-errors.ts';
import { PasswordQueueFullError } from '../../identity/password-pool.ts';
import { ANONYMOUS, type Principal } from '../../identity/principal.ts';
import { readCookie, SESSION_COOKIE, SessionStore, sessionCaller } from '../oci/api-v1/sessions.ts';
import { AccessError, cargoRefusal, INVALID_TOKEN } from './access.ts';
import { apiRoutes } from './api-routes.ts';
import { CargoMetrics } from './cargo-metrics.ts';
import { baseUrl, type CargoContext } from './context.ts';
import { crateRoutes } from './crate-routes.ts';
import { CargoError } from './errors.ts';
import { IndexContentionError } from './index-file.ts';
import { indexRoutes } from './index-routes.ts';
import { mirrorRoutes, UpstreamError } from './mirror.ts';
import { tooLarge } from './publish.ts';
import { CrateCatalog } from './search.ts';
import { StoredFiles } from './stored-files.ts';

/**
 * The Cargo registry: sparse index, Web API and the crates.io mirror. Every error leaves in cargo's
 * `{"errors":[{"detail":…}]}` form, which cargo prints to the user as it is.
 */
export async function cargoRegistry(
  app: FastifyInstance,
  options: Omit<CargoContext, 'files' | 'cargoMetrics' | 'catalog'>,
): Promise<void> {
  const context: CargoContext = {
    ...options,
    catalog: new CrateCatalog(options.store, {
      revalidateMillis: options.config.registry.cargo.indexRevalidateMillis,
    }),
    files: new StoredFiles(options.store, {
      revalidateMillis: options.config.registry.cargo.indexRevalidateMillis,
    }),
    cargoMetrics: new CargoMetrics(options.metrics),
  };
  const cargo = context.config.registry.cargo;
  const sessions = new SessionStore(options.store);

  // Who is calling, before any body is read: a publish without a token is refused at once, not
  // after its 10 MiB upload. Reads of a public registry ignore credentials (cargo sends none).
  // Set by the onRequest hook below before any handler runs (Fastify wants null here, not an object).
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request) => {
    request.principal = ANONYMOUS;
    if (!needsCredentials(request, !cargo.authRequired)) return;
    const credentials = parseAuthorization(request.headers.authorization);
    if (credentials.type === 'none' && readCookie(request.headers.cookie, SESSION_COOKIE) !== undefined) {
      // The web UI: a browser session (cookie + CSRF token for changes), as API v1 checks it.
      const caller = await sessionCaller(request, sessions, context.resolver);
      if (caller === 'csrf-failure') throw new AccessError(403, 'CSRF token was invalid or missing');
      if (caller.principal.kind === 'anonymous') throw cargoRefusal(AUTHENTICATE, cargo.authRequired);
      request.principal = caller.principal;
      return;
    }
    if (credentials.type === 'none') throw cargoRefusal(AUTHENTICATE, cargo.authRequired);
    // cargo sends its token as `Authorization: <token>`; other clients as `Bearer <token>`.
    const principal = credentials.type === 'token' ? await context.resolver.token(credentials.token) : null;
    if (!principal) throw new AccessError(403, INVALID_TOKEN);
    request.principal = principal;
  });
  // The one authorization check: what the route declared in `config.access`, asked of the policy.
  app.addHook('preHandler', async (request) => {
    const decision = await routeDecision(context.policy, request.principal, request);
    if (decision && !decision.allowed) throw cargoRefusal(decision, cargo.authRequired);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    let status = 500;
    let detail = 'internal error in the registry; the operators can find it in the server log';
    if (error instanceof AccessError) {
      status = error.status;
      detail = error.message;
      if (status === 401)
        reply.header('www-authenticate', `Cargo login_url="${baseUrl(context.config, request)}/me"`);
    } else if (error instanceof CargoError) {
      status = error.status;
      detail = error.message;
    } else if (error instanceof UpstreamError) {
      status = 502;
      detail = error.message;
    } else if (error instanceof IndexContentionError) {
      status = 503;
      detail = 'too many concurrent publishes of this crate; try again';
      reply.header('retry-after', '1');
    } else if (error instanceof PasswordQueueFullError) {
      // A remote AuthService could not check this registry's own service password right now.
      status = 503;
      detail = 'the AuthService is busy checking passwords; try again';
      reply.header('retry-after', String(error.retryAfterSeconds));
    } else if (isBodyTooLarge(error)) {
      // Refused from Content-Length or at the limit, before the body was read: its size is unknown.
      status = 413;
      detail =
        request.routeOptions.url === '/api/v1/crates/new'
          ? tooLarge(null, cargo.maxCrateBytes).message
          : `the request body is larger than this registry's limit of ${context.config.bodyLimitBytes} bytes`;
    } else if (requestErrorStatus(error) !== null) {
      status = requestErrorStatus(error) as number;
      detail = error.validation ? `invalid request: ${error.message}` : error.message;
    }
    if (request.routeOptions.url === '/api/v1/crates/new')
      context.cargoMetrics.publishes.inc({ result: status >= 500 ? 'failed' : 'refused' });
    if (status >= 500 && status !== 502) request.log.error({ err: error }, 'cargo request failed');
    else request.log.info({ status, detail }, 'cargo request refused');
    return reply.code(status).send({ errors: [{ detail }] });
  });
  await app.register(indexRoutes, context);
  await app.register(apiRoutes, context);
  await app.register(crateRoutes, context);
  if (cargo.mirror.enabled) await app.register(mirrorRoutes, context);
}
