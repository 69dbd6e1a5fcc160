import type { RegistryConfig } from '../config/types.ts';
import type { IdentityClient } from '../identity/principal.ts';
import type { Metrics } from '../observability/metrics.ts';

/** The registry's view of a remote AuthService, over its RestAuth API. */
export function createRemoteIdentityClient(_config: RegistryConfig, _metrics: Metrics): IdentityClient {
  throw new Error('remote AuthService client not implemented yet');
}
