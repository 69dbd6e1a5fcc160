import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrape } from '../support/metrics.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

/** registry.oci.metadataCacheMillis for both replicas. */
const BOUND_MS = 1000;
/** How long past the bound the replicas are watched. */
const WATCH_MS = 600;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * The metadata cache's staleness bound in the deployment shape: two wharf processes on one MinIO
 * bucket. What one replica changes, it serves at once; the other serves it within the bound, and
 * never serves what was deleted once the bound has passed.
 */
describe('two registry replicas on one bucket: the metadata cache bound', () => {
  let minio: MinioServer;
  let a: WharfProcess;
  let b: WharfProcess;
  let auth: Record<string, string>;

  beforeAll(async () => {
    minio = await startMinio();
    const bucket = await minio.createBucket();
    const env = {
      ...minio.wharfEnv(bucket),
      WHARF_SIGNUP: 'open',
      WHARF_OCI_GC_ENABLED: 'false',
      WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      WHARF_OCI_METADATA_CACHE_MILLIS: String(BOUND_MS),
    };
    a = await startWharfProcess(env); // first: it generates the signing key both replicas use
    b = await startWharfProcess(env);
    const signup = await fetch(`${a.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'alice-password' }),
    });
    expect(signup.status).toBe(200);
    const token = await fetch(`${a.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push,delete`, {
      headers: { authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}` },
    });
    auth = { authorization: `Bearer ${((await token.json()) as { token: string }).token}` };
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await minio?.stop();
  });

  /** Pushes a fresh image (its config blob, then the manifest) through `server`; returns its digest. */
  async function pushImage(server: WharfProcess, reference?: string): Promise<string> {
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(8).toString('hex') }),
    );
    const blob = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${sha256(config)}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: config,
    });
    expect(blob.status).toBe(201);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [],
      }),
    );
    const put = await fetch(`${server.url}/v2/alice/app/manifests/${reference ?? sha256(manifest)}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': MANIFEST_TYPE },
      body: manifest,
    });
    expect(put.status).toBe(201);
    return sha256(manifest);
  }

  async function manifest(
    server: WharfProcess,
    reference: string,
  ): Promise<{ status: number; digest: string | null }> {
    const response = await fetch(`${server.url}/v2/alice/app/manifests/${reference}`, {
      headers: { ...auth, accept: MANIFEST_TYPE },
    });
    await response.arrayBuffer();
    return { status: response.status, digest: response.headers.get('docker-content-digest') };
  }

  /** GETs `reference` on `server` back to back until `until` (performance.now()), with each request's start. */
  async function watch(server: WharfProcess, reference: string, until: number) {
    const seen: { startedAt: number; status: number; digest: string | null }[] = [];
    while (performance.now() < until) {
      const startedAt = performance.now();
      seen.push({ startedAt, ...(await manifest(server, reference)) });
    }
    return seen;
  }

  it('a tag moved on one replica is served by it at once and by the other within the bound', async () => {
    const first = await pushImage(a, 'latest');
    // Both replicas hold the tag in memory now.
    expect(await manifest(a, 'latest')).toEqual({ status: 200, digest: first });
    expect(await manifest(b, 'latest')).toEqual({ status: 200, digest: first });
    const second = await pushImage(a, 'latest');
    const movedAt = performance.now();
    expect(await manifest(a, 'latest')).toEqual({ status: 200, digest: second });
    const seen = await watch(b, 'latest', movedAt + BOUND_MS + WATCH_MS);
    for (const response of seen) expect(response.status).toBe(200);
    // Everything asked for once the bound had passed is the new image; nothing goes back to the old.
    const late = seen.filter((response) => response.startedAt >= movedAt + BOUND_MS);
    expect(late.length).toBeGreaterThan(0);
    for (const response of late) expect(response.digest).toBe(second);
    const firstNew = seen.findIndex((response) => response.digest === second);
    expect(seen.slice(firstNew).every((response) => response.digest === second)).toBe(true);
  });

  it('a manifest deleted on one replica is never served by the other after the bound', async () => {
    const digest = await pushImage(a);
    expect(await manifest(a, digest)).toEqual({ status: 200, digest });
    expect(await manifest(b, digest)).toEqual({ status: 200, digest });
    const deleted = await fetch(`${a.url}/v2/alice/app/manifests/${digest}`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(deleted.status).toBe(202);
    const deletedAt = performance.now();
    expect((await manifest(a, digest)).status).toBe(404);
    const seen = await watch(b, digest, deletedAt + BOUND_MS + WATCH_MS);
    const late = seen.filter((response) => response.startedAt >= deletedAt + BOUND_MS);
    expect(late.length).toBeGreaterThan(0);
    for (const response of late) expect(response.status).toBe(404);
    const firstGone = seen.findIndex((response) => response.status === 404);
    expect(seen.slice(firstGone).every((response) => response.status === 404)).toBe(true);
  });

  it('answers repeated pulls from memory: at most one revalidation per document and bound', async () => {
    const digest = await pushImage(a, 'cached');
    expect(await manifest(b, 'cached')).toEqual({ status: 200, digest });
    const reads = async () => {
      const metrics = await scrape(b.metricsUrl as string);
      return ['get', 'get_if_none_match', 'head'].reduce(
        (sum, operation) =>
          sum + metrics.value('wharf_store_operation_duration_seconds_count', { operation }),
        0,
      );
    };
    const before = await reads();
    const started = performance.now();
    const pulls = 30;
    for (let i = 0; i < pulls; i++) expect((await manifest(b, 'cached')).digest).toBe(digest);
    const windows = Math.ceil((performance.now() - started) / BOUND_MS) + 1;
    const storeReads = (await reads()) - before;
    // Uncached, each pull by tag reads the tag and the manifest: 60 store reads at least.
    expect(storeReads).toBeLessThanOrEqual(2 * windows);
    expect(storeReads).toBeLessThan(pulls);
  });
});
