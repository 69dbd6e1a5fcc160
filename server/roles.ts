import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { WharfConfig } from './config/types.ts';
import type { IdentityClient } from './identity/principal.ts';
import type { Metrics } from './observability/metrics.ts';
import type { ObjectStore } from './store/object-store.ts';

/** What every role gets from the program: nothing global, everything passed in. */
export interface RoleContext {
  config: WharfConfig;
  store: ObjectStore;
  metrics: Metrics;
  logger: Logger;
}

/** A role (auth, registry) is a set of Fastify plugins plus what it must release on shutdown. */
export interface Role {
  register(app: FastifyInstance): Promise<void>;
  close?(): Promise<void>;
}

export interface AuthRole extends Role {
  /** In-process access for a registry role running in the same process. */
  identity: IdentityClient;
}
