/**
 * OpenIdProvider → checks discovery and userinfo_endpoint, resolves the client credentials (a
 * referenced Secret, or a client registered dynamically and kept in an owned Secret), status.
 */
import type { OpenIdProvider } from '../api/types.ts';
import { keyOf } from '../kube/informer.ts';
import { ControllerBuilder } from '../runtime/builder.ts';
import { type ConditionInput, condition } from '../runtime/conditions.ts';
import { ensureGeneratedSecret, readSecret } from '../runtime/objects.ts';
import type { Caches } from './caches.ts';
import { type ReconcileContext, type ReconcileResult, splitKey } from './context.ts';
import { ownerReference, providerNames } from './names.ts';
import { publishStatus } from './workload.ts';

interface Discovery {
  issuer?: string;
  userinfo_endpoint?: string;
  registration_endpoint?: string;
}

async function discover(ctx: ReconcileContext, issuerUrl: string): Promise<Discovery> {
  const url = `${issuerUrl.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const response = await ctx.fetch(url, {
    signal: AbortSignal.timeout(10_000),
    headers: { accept: 'application/json' },
  });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return (await response.json()) as Discovery;
}

async function registerClient(ctx: ReconcileContext, provider: OpenIdProvider, endpoint: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  const tokenRef = provider.spec.initialAccessTokenSecretRef;
  if (tokenRef) {
    const token = readSecret(ctx, provider.metadata.namespace, tokenRef.name)?.token;
    if (!token) throw new Error(`Secret ${tokenRef.name} has no "token" key`);
    headers.authorization = `Bearer ${token}`;
  }
  const response = await ctx.fetch(endpoint, {
    method: 'POST',
    headers,
    signal: AbortSignal.timeout(10_000),
    body: JSON.stringify({
      client_name: `wharf ${provider.metadata.namespace}/${provider.metadata.name}`,
      redirect_uris: provider.spec.redirectUris ?? [],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok || typeof body.client_id !== 'string' || typeof body.client_secret !== 'string') {
    throw new Error(
      `registration at ${endpoint} failed: HTTP ${response.status} ${String(body.error_description ?? body.error ?? '')}`,
    );
  }
  return { client_id: body.client_id, client_secret: body.client_secret };
}

export async function reconcileOpenIdProvider(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const { namespace, name } = splitKey(key);
  const provider = ctx.caches.providers.get(key);
  if (!provider || provider.metadata.deletionTimestamp) return {};
  const conditions: ConditionInput[] = [];
  const fields: Record<string, unknown> = {};

  let discovery: Discovery | undefined;
  try {
    discovery = await discover(ctx, provider.spec.issuerUrl);
    const issuerMatches = discovery.issuer?.replace(/\/$/, '') === provider.spec.issuerUrl.replace(/\/$/, '');
    conditions.push(
      issuerMatches
        ? condition('Discovered', true, 'DiscoveryReachable', 'discovery document read')
        : condition('Discovered', false, 'IssuerMismatch', `discovery names issuer ${discovery.issuer}`),
    );
  } catch (error) {
    conditions.push(condition('Discovered', false, 'DiscoveryUnreachable', (error as Error).message));
  }
  if (discovery?.userinfo_endpoint) {
    fields.userinfoEndpoint = discovery.userinfo_endpoint;
    conditions.push(condition('UserinfoEndpoint', true, 'Present', discovery.userinfo_endpoint));
  } else {
    conditions.push(
      condition(
        'UserinfoEndpoint',
        discovery ? false : 'Unknown',
        discovery ? 'Missing' : 'DiscoveryUnreachable',
        discovery ? 'the discovery document has no userinfo_endpoint' : 'discovery failed',
      ),
    );
  }
  if (discovery?.registration_endpoint) fields.registrationEndpoint = discovery.registration_endpoint;

  const ref = provider.spec.clientSecretRef;
  if (ref) {
    const data = readSecret(ctx, namespace, ref.name);
    if (data?.client_id && data.client_secret) {
      fields.clientSecretName = ref.name;
      conditions.push(condition('ClientCredentials', true, 'SecretFound', `from Secret ${ref.name}`));
    } else {
      conditions.push(
        condition(
          'ClientCredentials',
          false,
          'SecretInvalid',
          `Secret ${ref.name} is missing or lacks client_id/client_secret`,
        ),
      );
    }
  } else {
    const secretName = providerNames(name).client;
    const existing = readSecret(ctx, namespace, secretName);
    if (existing?.client_id && existing.client_secret) {
      fields.clientSecretName = secretName;
      conditions.push(
        condition('ClientCredentials', true, 'Registered', `registered client in Secret ${secretName}`),
      );
    } else if (discovery?.registration_endpoint) {
      try {
        const credentials = await registerClient(ctx, provider, discovery.registration_endpoint);
        await ensureGeneratedSecret(ctx, {
          name: secretName,
          namespace,
          owner: provider,
          labels: { 'app.kubernetes.io/name': 'wharf', 'app.kubernetes.io/managed-by': 'wharf-operator' },
          ownerReference: ownerReference(provider),
          keys: { client_id: () => credentials.client_id, client_secret: () => credentials.client_secret },
        });
        await ctx.events.record(
          provider,
          'Normal',
          'ClientRegistered',
          `Registered client ${credentials.client_id} at ${discovery.registration_endpoint}`,
        );
        fields.clientSecretName = secretName;
        conditions.push(
          condition('ClientCredentials', true, 'Registered', `registered client in Secret ${secretName}`),
        );
      } catch (error) {
        conditions.push(
          condition('ClientCredentials', false, 'RegistrationFailed', (error as Error).message),
        );
      }
    } else {
      conditions.push(
        condition(
          'ClientCredentials',
          false,
          'NoCredentials',
          'no clientSecretRef, and the provider does not offer dynamic client registration',
        ),
      );
    }
  }

  await publishStatus(ctx, provider as never, conditions, fields, 'provider checked');
  // Discovery is outside the cluster: look again now and then, sooner while it fails.
  const healthy = conditions.every((condition) => condition.status === true);
  return { requeueAfterMs: healthy ? ctx.externalRecheckMs : Math.min(ctx.externalRecheckMs, 30_000) };
}

export const openIdProviderController = new ControllerBuilder<Caches, ReconcileContext>(
  'OpenIdProvider',
  'providers',
)
  .owns('secrets')
  .watches('secrets', (secret, caches) =>
    caches.providers
      .list()
      .filter(
        (provider) =>
          provider.metadata.namespace === secret.metadata?.namespace &&
          [provider.spec.clientSecretRef?.name, provider.spec.initialAccessTokenSecretRef?.name].includes(
            secret.metadata?.name,
          ),
      )
      .map(keyOf),
  )
  .complete(reconcileOpenIdProvider);
