import { AccessPolicy } from '../access/policy.ts';
import { Authenticator } from '../identity/authenticator.ts';
import { CredentialResolver } from '../identity/credential-resolver.ts';
import { Directory, IdentityError } from '../identity/directory.ts';
import { defaultPasswordWorkers, PasswordPool } from '../identity/password-pool.ts';
import { LoginThrottle } from '../identity/rate-limit.ts';
import { ServiceRegistry } from '../identity/services.ts';
import type { AuthRole, RoleContext } from '../roles.ts';
import { adminApiRoutes } from './api.ts';
import { authSessionStore } from './browser-session.ts';
import { ktraRoutes } from './ktra.ts';
import { mePage } from './me-page.ts';
import { directoryIdentity } from './openid/directory-port.ts';
import { restAuthRoutes } from './restauth.ts';

/** The AuthService: users, groups, tokens, RestAuth and Ktra endpoints. */
export async function createAuthRole(context: RoleContext): Promise<AuthRole> {
  // The role owns the bcrypt threads: they stop when it closes, or now if it cannot start.
  const passwords = await PasswordPool.start({
    workers: context.config.auth.passwordWorkers ?? defaultPasswordWorkers(),
    queueLimit: context.config.auth.passwordQueueLimit,
    metrics: context.metrics,
  });
  context.logger.info(
    { workers: passwords.workers, queueLimit: context.config.auth.passwordQueueLimit },
    'password pool started',
  );
  try {
    return await assembleAuthRole(context, passwords);
  } catch (error) {
    await passwords.close();
    throw error;
  }
}

async function assembleAuthRole(context: RoleContext, passwords: PasswordPool): Promise<AuthRole> {
  const { config, store, metrics, logger } = context;
  // Audit lines carry an `audit` field (event name) so they can be shipped and searched apart.
  const audit = (event: string, fields: Record<string, unknown>) =>
    logger.info({ audit: event, ...fields }, event);
  const directory = new Directory(store, { bcryptCost: config.auth.bcryptCost, passwords, audit });
  const throttle = new LoginThrottle(store, config.auth.rateLimit);
  const authenticator = new Authenticator(directory, throttle, metrics, audit);
  if (config.auth.rateLimit.perUser !== undefined)
    logger.warn(
      { perAccount: config.auth.rateLimit.perAccount },
      'auth.rateLimit.perUser (WHARF_RATE_LIMIT_PER_USER) is deprecated: it now sets auth.rateLimit.perAccount, which slows guessing from many addresses instead of locking the account for everyone (docs/identity.md, "Rate limits")',
    );
  const stopSweeping = sweepPeriodically(throttle, config.auth.rateLimit.windowSeconds, logger);
  const services = new ServiceRegistry(store, config.auth.services, {
    bcryptCost: config.auth.bcryptCost,
    passwords,
    cacheSeconds: config.registry.credentialCacheSeconds,
  });

  // The AuthService's own surfaces (/auth/api/v1, Ktra) are the authority: no credential cache here.
  const resolver = new CredentialResolver(authenticator, { cacheSeconds: 0, metrics });
  // Registry superusers are superusers of the registry's data, not administrators of accounts.
  const policy = new AccessPolicy({
    superusers: [],
    anonymousPull: false,
    cargoAuthRequired: true,
  });

  if (config.auth.adminPassword) await bootstrapAdmin(directory, config.auth.adminPassword, logger);
  // OpenID login (/me, /replace_token); null when no provider is configured, and then the OpenID
  // client libraries are not even loaded (~2 MB of memory per process).
  const openid =
    config.openid.providers.length === 0
      ? null
      : await (await import('./openid/login.ts')).createOpenIdLogin({
          config: config.openid,
          store,
          logger,
          identity: directoryIdentity(directory),
          metrics,
        });

  return {
    identity: authenticator,
    close: async () => {
      await stopSweeping();
      await openid?.close();
      await passwords.close();
    },
    async register(app) {
      await openid?.register(app); // first: it closes the Ktra password endpoints to people
      await app.register(restAuthRoutes, {
        prefix: config.auth.restauth.pathPrefix,
        authenticator,
        services,
        metrics,
      });
      await app.register(ktraRoutes, {
        prefix: '/ktra/api/v1',
        authenticator,
        resolver,
        policy,
        signup: config.auth.signup,
      });
      await app.register(adminApiRoutes, {
        prefix: '/auth/api/v1',
        sessions: authSessionStore(store),
        publicUrl: config.publicUrl,
        openIdProviders: config.openid.providers.map((provider) => provider.name),
        authenticator,
        resolver,
        policy,
        services,
      });
      if (!openid) await app.register(mePage, { config }); // with OpenID, /me is the OIDC flow
    },
  };
}

/**
 * Creates the `admin` user with administrator rights when it does not exist yet. Idempotent: an
 * existing admin keeps its password (it may have been changed since), so restarts change nothing.
 * The password is never logged.
 */
async function bootstrapAdmin(
  directory: Directory,
  password: string,
  logger: RoleContext['logger'],
): Promise<void> {
  if (await directory.getUser('admin')) {
    logger.info({ user: 'admin' }, 'bootstrap administrator already exists');
    return;
  }
  try {
    await directory.createUser('admin', password, { admin: true });
    logger.info({ user: 'admin' }, 'bootstrap administrator created');
  } catch (error) {
    // Another replica created it at the same moment: that is the outcome we wanted.
    if (!(error instanceof IdentityError && error.reason === 'exists')) throw error;
  }
}

/**
 * Deletes expired password-failure counters once per window (with jitter, so replicas spread
 * out; several sweeping at once is harmless). Returns the function that stops it, which waits for a
 * sweep in progress so the store is not closed under it.
 */
function sweepPeriodically(
  throttle: LoginThrottle,
  windowSeconds: number,
  logger: RoleContext['logger'],
): () => Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const sweep = async () => {
    try {
      const deleted = await throttle.sweep();
      if (deleted > 0) logger.debug({ deleted }, 'expired password-failure counters deleted');
    } catch (error) {
      logger.warn({ err: error }, 'sweeping password-failure counters failed; retrying next window');
    }
  };
  const schedule = () => {
    timer = setTimeout(
      () => {
        running = sweep().finally(() => {
          if (!stopped) schedule();
        });
      },
      windowSeconds * 1000 * (1 + Math.random() / 10),
    );
    timer.unref();
  };
  schedule();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
