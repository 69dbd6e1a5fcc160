import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GcReport } from '../../server/registry/oci/gc.ts';
import { keys, parseDigest } from '../../server/registry/oci/names.ts';
import type { TestServer } from '../support/wharf.ts';
import { type PushedImage, pushImage, startDistribution } from './proxy-support.ts';
import { startOci } from './support.ts';

const HOUR = 3_600_000;
const LAYER = 100 * 1024;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/**
 * GC of a pull-through cache: by last pull (`retentionHours`) and by size (`quotaBytes`, least
 * recently pulled first), with the GC's own safety rules (grace, re-checks). The test process's
 * Date moves through days; the upstream (distribution 2.8) and the sockets stay real.
 */
describe('OCI proxy cache GC', () => {
  let work: string;
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let wharf: TestServer;
  let rootToken: string;
  const images: Record<string, PushedImage> = {};
  let t0: number;
  const at = (hours: number) => vi.setSystemTime(t0 + hours * HOUR);

  const pull = async (name: string, proxy = 'hub') => {
    const manifest = await fetch(`${wharf.url}/v2/${proxy}/${name}/manifests/v1`, {
      headers: { accept: MANIFEST },
    });
    expect(manifest.status).toBe(200);
    const layer = await fetch(`${wharf.url}/v2/${proxy}/${name}/blobs/${images[name]?.layer}`);
    expect(layer.status).toBe(200);
    await layer.arrayBuffer();
  };
  const cached = async (name: string) =>
    (await wharf.store.head(keys.blob(parseDigest(images[name]?.layer as string) as never))) !== null;
  const gc = async (): Promise<GcReport> => {
    const response = await fetch(`${wharf.url}/api/v1/superuser/gc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${rootToken}` },
    });
    expect(response.status).toBe(200);
    return (await response.json()) as GcReport;
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'wharf-oci-proxy-gc-'));
    distribution = await startDistribution(work);
    for (const name of ['a', 'b', 'c'])
      images[name] = await pushImage(distribution.url, `library/${name}`, 'v1', LAYER);
    // d and e share their layer; f has its own.
    const shared = randomBytes(LAYER);
    for (const name of ['d', 'e'])
      images[name] = await pushImage(distribution.url, `library/${name}`, 'v1', shared);
    images.f = await pushImage(distribution.url, 'library/f', 'v1', LAYER);
    t0 = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    at(0);
    wharf = await startOci({
      registry: {
        superusers: ['root'],
        oci: {
          gc: { enabled: false, graceHours: 3 },
          proxies: [
            // Room for two of the three images.
            {
              namespace: 'hub',
              upstream: distribution.url,
              library: true,
              retentionHours: 48,
              quotaBytes: 2.5 * LAYER,
            },
            // Room for one layer and a half, no retention by time.
            {
              namespace: 'shared',
              upstream: distribution.url,
              library: true,
              retentionHours: 0,
              quotaBytes: 1.5 * LAYER,
            },
          ],
        },
      },
    });
    const signup = await fetch(`${wharf.url}/ktra/api/v1/new_user/root`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'root-password' }),
    });
    expect(signup.status).toBe(200);
    rootToken = ((await signup.json()) as { token: string }).token;
  });

  afterAll(async () => {
    vi.useRealTimers();
    await wharf?.stop();
    await distribution?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('evicts the least recently pulled image beyond the quota, then what nobody pulled within the retention', async () => {
    await pull('a');
    at(1);
    await pull('b');
    at(2);
    await pull('c');
    // Within grace nothing goes, quota or not.
    expect((await gc()).deletions.tags).toEqual([]);

    at(4);
    const quota = await gc();
    expect(quota.deletions.tags).toEqual([{ repository: 'hub/library/a', tag: 'v1' }]);
    expect(quota.deletions.manifests).toEqual([{ repository: 'hub/library/a', digest: images.a?.manifest }]);
    expect(quota.deletions.blobs).toContain(images.a?.layer);
    expect(await cached('a')).toBe(false);
    expect(await cached('b')).toBe(true);
    expect(await cached('c')).toBe(true);

    // Pulled again, it comes back from upstream; c is pulled once more later.
    at(5);
    await pull('a');
    expect(await cached('a')).toBe(true);
    at(30);
    await pull('c');

    // 51 h after their last pulls, a and b go; c (26 h) stays.
    at(56);
    const retention = await gc();
    expect(retention.deletions.tags.map((tag) => tag.repository).sort()).toEqual([
      'hub/library/a',
      'hub/library/b',
    ]);
    expect(await cached('a')).toBe(false);
    expect(await cached('b')).toBe(false);
    expect(await cached('c')).toBe(true);
    expect(
      (await fetch(`${wharf.url}/v2/hub/c/manifests/v1`, { headers: { accept: MANIFEST } })).status,
    ).toBe(200);
  }, 120_000);

  it('counts a layer two cached images share once against the quota', async () => {
    const shared = async () =>
      (await gc()).deletions.tags
        .filter((tag) => tag.repository.startsWith('shared/'))
        .map((tag) => tag.repository);
    at(60);
    await pull('d', 'shared');
    at(61);
    await pull('e', 'shared');
    // One layer, two small manifests and configs: under one layer and a half.
    at(70);
    expect(await shared()).toEqual([]);
    at(71);
    await pull('f', 'shared');
    // Two layers now: d goes first, but frees only its manifest and config; e must go too.
    at(80);
    expect(await shared()).toEqual(['shared/library/d', 'shared/library/e']);
    const f = await fetch(`${wharf.url}/v2/shared/f/manifests/v1`, { headers: { accept: MANIFEST } });
    expect(f.status).toBe(200);
  }, 120_000);
});
