import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../server/registry/oci/gc.ts';
import { startMinio } from '../support/minio.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import type { TestServer } from '../support/wharf.ts';
import { basic, startOci } from './support.ts';

const HOUR = 3_600_000;
const PASSWORD = 'correct-horse-battery';
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

/** A registry client over HTTP, as docker or containerd talks to wharf (token per call: time moves). */
class Client {
  readonly url: string;
  /** API tokens by user (they live in the store: any replica accepts them). */
  private readonly apiTokens: Map<string, string>;
  /** Sizes of the manifests pushed, by digest: an index's descriptors must state them. */
  private readonly sizes = new Map<string, number>();
  constructor(url: string, apiTokens = new Map<string, string>()) {
    this.url = url;
    this.apiTokens = apiTokens;
  }

  /** The same users, through another replica. */
  via(url: string): Client {
    return new Client(url, this.apiTokens);
  }

  async signUp(user: string): Promise<void> {
    const response = await fetch(`${this.url}/ktra/api/v1/new_user/${user}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: PASSWORD }),
    });
    expect(response.status).toBe(200);
    this.apiTokens.set(user, ((await response.json()) as { token: string }).token);
  }

  private async bearer(user: string, repository: string): Promise<string> {
    const response = await fetch(
      `${this.url}/v2/auth?service=wharf&scope=repository:${repository}:pull,push,delete`,
      { headers: { authorization: basic(user, PASSWORD) } },
    );
    expect(response.status).toBe(200);
    return `Bearer ${((await response.json()) as { token: string }).token}`;
  }

  async pushBlob(user: string, repository: string, data: Buffer): Promise<string> {
    const response = await fetch(`${this.url}/v2/${repository}/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      headers: {
        authorization: await this.bearer(user, repository),
        'content-type': 'application/octet-stream',
      },
      body: data,
    });
    expect(response.status).toBe(201);
    return sha256(data);
  }

  /** An image of one fresh layer (and a shared config); returns the manifest's digest. */
  async pushImage(
    user: string,
    repository: string,
    reference: string | null,
    layer: Buffer,
  ): Promise<string> {
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    await this.pushBlob(user, repository, config);
    await this.pushBlob(user, repository, layer);
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: IMAGE,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length },
        ],
      }),
    );
    return this.pushManifest(user, repository, reference, body, IMAGE);
  }

  /** A signature-like artifact whose subject is `subject` (what cosign or notation push). */
  async pushReferrer(user: string, repository: string, subject: string): Promise<string> {
    const config = Buffer.from('{}');
    await this.pushBlob(user, repository, config);
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: IMAGE,
        artifactType: 'application/vnd.example.signature',
        config: {
          mediaType: 'application/vnd.oci.empty.v1+json',
          digest: sha256(config),
          size: config.length,
        },
        layers: [],
        subject: { mediaType: IMAGE, digest: subject, size: 1 },
      }),
    );
    return this.pushManifest(user, repository, null, body, IMAGE);
  }

  async pushIndex(user: string, repository: string, reference: string, children: string[]): Promise<string> {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: INDEX,
        manifests: children.map((digest, i) => ({
          mediaType: IMAGE,
          digest,
          size: this.sizes.get(digest),
          platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' },
        })),
      }),
    );
    return this.pushManifest(user, repository, reference, body, INDEX);
  }

  private async pushManifest(
    user: string,
    repository: string,
    reference: string | null,
    body: Buffer,
    type: string,
  ): Promise<string> {
    const response = await fetch(`${this.url}/v2/${repository}/manifests/${reference ?? sha256(body)}`, {
      method: 'PUT',
      headers: { authorization: await this.bearer(user, repository), 'content-type': type },
      body,
    });
    expect(response.status).toBe(201);
    this.sizes.set(sha256(body), body.length);
    return String(response.headers.get('docker-content-digest'));
  }

  /** GET of a manifest (by tag or digest) or a blob: the status a puller sees. */
  async pull(
    user: string,
    repository: string,
    what: 'manifests' | 'blobs',
    reference: string,
  ): Promise<number> {
    const response = await fetch(`${this.url}/v2/${repository}/${what}/${reference}`, {
      headers: { authorization: await this.bearer(user, repository), accept: `${IMAGE}, ${INDEX}` },
    });
    await response.arrayBuffer();
    return response.status;
  }

  async deleteTag(user: string, repository: string, tag: string): Promise<void> {
    const response = await fetch(`${this.url}/v2/${repository}/manifests/${tag}`, {
      method: 'DELETE',
      headers: { authorization: await this.bearer(user, repository) },
    });
    expect(response.status).toBe(202);
  }

  /** The superuser endpoint; `as` null means anonymous. */
  async gc(
    as: string | null,
    query = '',
  ): Promise<{ status: number; body: GcReport & { error_type?: string } }> {
    const token = as ? this.apiTokens.get(as) : undefined;
    const response = await fetch(`${this.url}/api/v1/superuser/gc${query}`, {
      method: 'POST',
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: response.status, body: (await response.json()) as GcReport & { error_type?: string } };
  }
}

/**
 * Every object of the store with its ETag, but pull records: a run first writes the pulls its
 * replica has seen, which is not a deletion.
 */
async function snapshot(server: TestServer): Promise<string[]> {
  const objects: string[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await server.store.list({
      prefix: 'oci/',
      ...(continuationToken ? { continuationToken } : {}),
    });
    for (const object of page.objects)
      if (!object.key.includes('/activity/')) objects.push(`${object.key} ${object.etag}`);
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return objects;
}

const sorted = <T>(items: T[]) => [...items].map((item) => JSON.stringify(item)).sort();

/**
 * The whole server lives through weeks in a few seconds: the test process's clock (Date only; the
 * server runs in this process, timers and sockets stay real) is moved forward between steps.
 */
describe('OCI GC and digest-pinned deployments (fs store, real sockets)', () => {
  let server: TestServer;
  let client: Client;
  let t0: number;
  const at = (hours: number) => vi.setSystemTime(t0 + hours * HOUR);

  beforeAll(async () => {
    t0 = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    at(0);
    server = await startOci({
      logLevel: 'info',
      registry: { superusers: ['root'], oci: { gc: { enabled: false, deleteUntagged: true } } },
    });
    client = new Client(server.url);
    await client.signUp('alice');
    await client.signUp('root');
  });
  afterAll(async () => {
    vi.useRealTimers();
    await server?.stop();
  });

  it('keeps what was untagged or pulled by digest within the window, and deletes the rest after it', async () => {
    const repo = 'alice/app';
    const layers = Array.from({ length: 5 }, () => randomBytes(2048));
    // app:v1 is deployed pinned by digest; then v1 moves to a new build.
    const deployed = await client.pushImage('alice', repo, 'v1', layers[0]!);
    const signature = await client.pushReferrer('alice', repo, deployed);
    expect(await client.pull('alice', repo, 'manifests', deployed)).toBe(200);
    const current = await client.pushImage('alice', repo, 'v1', layers[1]!);
    // Pushed by digest, never tagged, never pulled.
    const stray = await client.pushImage('alice', repo, null, layers[2]!);
    // A multi-platform image whose tag is deleted: its children go only with it.
    const amd64 = await client.pushImage('alice', repo, null, layers[3]!);
    const arm64 = await client.pushImage('alice', repo, null, layers[4]!);
    const index = await client.pushIndex('alice', repo, 'multi', [amd64, arm64]);
    await client.deleteTag('alice', repo, 'multi');

    // Within the window (default 168 h) nothing untagged goes.
    at(100);
    const early = await client.gc('root');
    expect(early.status).toBe(200);
    expect(early.body.deletions.manifests).toEqual([]);
    expect(early.body.retainedUntagged).toBe(6);

    // The deployment keeps pulling by digest (a node restarts, a pod is rescheduled).
    at(150);
    expect(await client.pull('alice', repo, 'manifests', deployed)).toBe(200);

    // Past the window: what nobody pulled goes; the pinned image stays.
    at(200);
    const before = await snapshot(server);
    const preview = await client.gc('root', '?dry_run=true');
    expect(preview.status).toBe(200);
    expect(preview.body.dryRun).toBe(true);
    expect(sorted(preview.body.deletions.manifests)).toEqual(
      sorted([stray, amd64, arm64, index].map((digest) => ({ repository: repo, digest }))),
    );
    expect(sorted(preview.body.deletions.links)).toEqual(
      sorted([2, 3, 4].map((i) => ({ repository: repo, digest: sha256(layers[i]!) }))),
    );
    expect(sorted(preview.body.deletions.blobs)).toEqual(sorted([2, 3, 4].map((i) => sha256(layers[i]!))));
    expect(preview.body.deletions.data).toHaveLength(3);
    // The dry run changed nothing (pulling the manifests to check would count as pulls: look at the store).
    expect(await snapshot(server)).toEqual(before);
    expect(await client.pull('alice', repo, 'blobs', sha256(layers[2]!))).toBe(200);

    const run = await client.gc('root');
    expect(run.body.dryRun).toBe(false);
    expect(run.body.deletions).toEqual(preview.body.deletions);
    expect(run.body.bytesFreed).toBe(preview.body.bytesFreed);
    for (const digest of [stray, amd64, arm64, index])
      expect(await client.pull('alice', repo, 'manifests', digest)).toBe(404);
    expect(await client.pull('alice', repo, 'blobs', sha256(layers[2]!))).toBe(404);
    expect(await client.pull('alice', repo, 'manifests', deployed)).toBe(200);
    expect(await client.pull('alice', repo, 'blobs', sha256(layers[0]!))).toBe(200);
    expect(await client.pull('alice', repo, 'manifests', 'v1')).toBe(200);
    // Its signature stays with it.
    expect(run.body.deletions.manifests).not.toContainEqual({ repository: repo, digest: signature });
    expect(await client.pull('alice', repo, 'manifests', current)).toBe(200);

    // Once unpulled (last: the check above, at 200 h) for longer than the window plus the hour
    // pulls are recorded at, it goes too.
    at(200 + 168 + 0.5);
    expect((await client.gc('root')).body.deletions.manifests).toEqual([]);
    at(200 + 168 + 1.5);
    const late = await client.gc('root');
    // The image first, then what only it kept.
    expect(late.body.deletions.manifests).toEqual([
      { repository: repo, digest: deployed },
      { repository: repo, digest: signature },
    ]);
    expect(await client.pull('alice', repo, 'manifests', deployed)).toBe(404);
    expect(await client.pull('alice', repo, 'blobs', sha256(layers[0]!))).toBe(404);
    expect(await client.pull('alice', repo, 'manifests', 'v1')).toBe(200);

    // What operators see: counters by kind, and one log line per run.
    const metrics = await server.wharf.metrics.registry.metrics();
    expect(metrics).toContain('wharf_gc_runs_total{registry="oci",result="completed"} 4');
    expect(metrics).toContain('wharf_gc_runs_total{registry="oci",result="dry_run"} 1');
    expect(metrics).toContain('wharf_gc_deleted_objects_total{registry="oci",kind="manifest"} 6');
    expect(metrics).toContain('wharf_gc_deleted_objects_total{registry="oci",kind="blob"} 5');
    const freed = run.body.bytesFreed + late.body.bytesFreed;
    expect(metrics).toContain(`wharf_gc_freed_bytes_total{registry="oci"} ${freed}`);
    const lines = server
      .logs()
      .split('\n')
      .filter((line) => line.includes('"OCI garbage collection'));
    expect(lines).toHaveLength(5);
    expect(JSON.parse(lines[2]!).gc).toMatchObject({ dryRun: false, deletedManifests: 4, deletedBlobs: 3 });
  });

  it('lets only superusers run it or preview it, and refuses a malformed flag', async () => {
    expect((await client.gc(null, '?dry_run=true')).status).toBe(401);
    expect((await client.gc('alice', '?dry_run=true')).status).toBe(403);
    const malformed = await client.gc('root', '?dry_run=perhaps');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error_type).toBe('invalid_request');
  });
});

describe('OCI GC with deleteUntagged off (the default)', () => {
  let server: TestServer;
  let client: Client;
  let t0: number;

  beforeAll(async () => {
    t0 = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(t0);
    server = await startOci({ registry: { superusers: ['root'], oci: { gc: { enabled: false } } } });
    client = new Client(server.url);
    await client.signUp('alice');
    await client.signUp('root');
  });
  afterAll(async () => {
    vi.useRealTimers();
    await server?.stop();
  });

  it('keeps untagged manifests however old, and still collects blobs nothing uses', async () => {
    const repo = 'alice/keep';
    const old = await client.pushImage('alice', repo, 'v1', randomBytes(1024));
    await client.pushImage('alice', repo, 'v1', randomBytes(1024));
    const orphan = await client.pushBlob('alice', repo, randomBytes(1024));
    vi.setSystemTime(t0 + 1000 * HOUR);
    const run = await client.gc('root');
    expect(run.body.deletions.manifests).toEqual([]);
    expect(run.body.retainedUntagged).toBe(1);
    expect(run.body.deletions.blobs).toEqual([orphan]);
    expect(await client.pull('alice', repo, 'manifests', old)).toBe(200);
  });
});

/** The deployment shape: replicas share one bucket, and GC runs in one of them at a time. */
describe('OCI GC on two processes sharing one MinIO bucket', () => {
  let minio: Awaited<ReturnType<typeof startMinio>>;
  let replicas: WharfProcess[] = [];

  beforeAll(async () => {
    minio = await startMinio();
    const bucket = await minio.createBucket();
    const env = {
      ...minio.wharfEnv(bucket),
      WHARF_SIGNUP: 'open',
      WHARF_SUPERUSERS: 'root',
      WHARF_LOG_LEVEL: 'info',
      WHARF_OCI_GC_ENABLED: 'false',
      WHARF_OCI_GC_GRACE_HOURS: '0',
      // Replicas on S3 share a generated signing key, sealed with this (docs/oci.md).
      WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    };
    replicas = await Promise.all([startWharfProcess(env), startWharfProcess(env)]);
  }, 20 * 60_000);
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await minio?.stop();
  });

  it('runs GC in one process while the other reports that it skipped', async () => {
    const a = new Client(replicas[0]!.url);
    const b = a.via(replicas[1]!.url);
    await a.signUp('alice');
    await a.signUp('root');
    // Enough repositories that a run takes a while, and blobs nothing uses (grace 0: due at once).
    const orphans: string[] = [];
    for (let i = 0; i < 12; i++) {
      await a.pushImage('alice', `alice/r${i}`, 'latest', randomBytes(512));
      orphans.push(await a.pushBlob('alice', `alice/r${i}`, randomBytes(512)));
    }
    const [fromA, fromB] = await Promise.all([a.gc('root'), b.gc('root')]);
    expect([fromA.status, fromB.status]).toEqual([200, 200]);
    const ran = [fromA.body, fromB.body].filter((report) => !report.skipped);
    const skipped = [fromA.body, fromB.body].filter((report) => report.skipped);
    expect(ran).toHaveLength(1);
    expect(skipped).toHaveLength(1);
    expect(sorted(ran[0]!.deletions.blobs)).toEqual(sorted(orphans));
    expect(skipped[0]!.deletions.blobs).toEqual([]);
    expect(skipped[0]!.skipped!.holder).toMatch(/\/\d+\/[0-9a-f]{8}$/);
    const skippedProcess = fromA.body.skipped ? replicas[0]! : replicas[1]!;
    expect(skippedProcess.output()).toContain(
      'OCI garbage collection skipped: another process holds the lease',
    );
    // The lease is released after the run: the next run goes ahead and finds nothing left to do.
    const again = await b.gc('root');
    expect(again.body.skipped).toBeUndefined();
    expect(again.body.deletions.blobs).toEqual([]);
    for (let i = 0; i < 12; i++)
      expect(await b.pull('alice', `alice/r${i}`, 'manifests', 'latest')).toBe(200);
  }, 120_000);
});
