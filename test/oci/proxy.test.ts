import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys, parseDigest } from '../../server/registry/oci/names.ts';
import type { TestServer } from '../support/wharf.ts';
import { writeOciLayout } from './layout.ts';
import { pushImage, startDistribution, ThrottlingProxy } from './proxy-support.ts';
import { basic, createUser, startOci, toolPath } from './support.ts';

const exec = promisify(execFile);
const LAYER_MB = Number(process.env.PROXY_TEST_LAYER_MB ?? 64);
const CONCURRENT_PULLS = 20;

/**
 * The pull-through cache against real upstreams: distribution 2.8 (anonymous) behind the
 * throttling proxy (which counts upstream requests and plays 429, down and broken bodies), and a
 * second wharf with token auth and a user's credentials. Real skopeo and crane pull through it.
 */
describe('OCI pull-through cache', () => {
  let work: string;
  let distribution: Awaited<ReturnType<typeof startDistribution>>;
  let gate: ThrottlingProxy;
  let tokenGate: ThrottlingProxy;
  /** In front of the token-auth wharf too, for blob redirects to "storage" (distribution). */
  let redirectingGate: ThrottlingProxy;
  let storage: ThrottlingProxy;
  let upstreamWharf: TestServer;
  let wharf: TestServer;
  let host: string;
  let layout: Awaited<ReturnType<typeof writeOciLayout>>;
  let large: Awaited<ReturnType<typeof pushImage>>;
  let privateImage: Awaited<ReturnType<typeof pushImage>>;

  const skopeo = async (...args: string[]) => {
    const binary = await toolPath('skopeo');
    const [command, ...rest] = args;
    const policy = command === 'copy' ? [`--policy=${path.join(work, 'policy.json')}`] : [];
    return exec(
      binary,
      [...policy, command as string, `--authfile=${path.join(work, 'auth.json')}`, ...rest],
      {
        env: { ...process.env, HOME: work },
        timeout: 120_000,
      },
    );
  };
  const crane = async (...args: string[]) =>
    exec(await toolPath('crane'), args, { env: { ...process.env, HOME: work }, timeout: 120_000 });

  async function token(
    server: TestServer,
    scope: string,
    credentials?: string,
  ): Promise<Record<string, string>> {
    const response = await fetch(`${server.url}/v2/auth?service=wharf&scope=${encodeURIComponent(scope)}`, {
      headers: credentials ? { authorization: credentials } : {},
    });
    expect(response.status).toBe(200);
    return { authorization: `Bearer ${((await response.json()) as { token: string }).token}` };
  }

  async function metric(name: string, labels: string): Promise<number> {
    const text = await (await fetch(`${wharf.metricsUrl}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`${name}{`) && labels.split(',').every((p) => l.includes(p)));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'wharf-oci-proxy-'));
    await writeFile(
      path.join(work, 'policy.json'),
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
    );
    distribution = await startDistribution(work);
    const upstreamHost = new URL(distribution.url).host;
    layout = await writeOciLayout(path.join(work, 'layout'));
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${path.join(work, 'layout')}:v1`,
      `docker://${upstreamHost}/library/app:v1`,
    );
    await skopeo(
      'copy',
      '--all',
      '--dest-tls-verify=false',
      `oci:${path.join(work, 'layout')}:multi`,
      `docker://${upstreamHost}/library/app:multi`,
    );
    await skopeo(
      'copy',
      '--dest-tls-verify=false',
      `oci:${path.join(work, 'layout')}:v1`,
      `docker://${upstreamHost}/team/tool:v1`,
    );
    large = await pushImage(distribution.url, 'library/large', 'v1', LAYER_MB * 1024 * 1024);
    gate = await new ThrottlingProxy(distribution.url).start();

    // Upstream 2: a wharf where nothing is pulled anonymously; bob's image is private.
    upstreamWharf = await startOci({ registry: { oci: { anonymousPull: false } } });
    await createUser(upstreamWharf, 'bob', 'bob-password');
    const bobAuth = await token(
      upstreamWharf,
      'repository:bob/private:pull,push',
      basic('bob', 'bob-password'),
    );
    privateImage = await pushImage(upstreamWharf.url, 'bob/private', 'v1', 4096, bobAuth);
    tokenGate = await new ThrottlingProxy(upstreamWharf.url).start();
    // The same private layer also sits in "blob storage" (distribution), where redirects lead.
    const storedLayer = randomBytes(8192);
    await pushImage(
      upstreamWharf.url,
      'bob/stored',
      'v1',
      storedLayer,
      await token(upstreamWharf, 'repository:bob/stored:pull,push', basic('bob', 'bob-password')),
    );
    await pushImage(distribution.url, 'bob/stored', 'v1', storedLayer);
    storage = await new ThrottlingProxy(distribution.url).start();
    redirectingGate = await new ThrottlingProxy(upstreamWharf.url).start();
    redirectingGate.mode = 'redirect-blobs';
    redirectingGate.redirectTo = storage.url;

    wharf = await startOci({
      registry: {
        superusers: ['root'],
        oci: {
          proxies: [
            { namespace: 'dockerhub', upstream: gate.url, library: true, manifestTtlSeconds: 0 },
            { namespace: 'limited', upstream: gate.url, repositories: ['library/*'] },
            {
              namespace: 'private',
              upstream: tokenGate.url,
              username: 'bob',
              password: 'bob-password',
              anonymousPull: false,
            },
            { namespace: 'nocreds', upstream: upstreamWharf.url },
            {
              namespace: 'badcreds',
              upstream: upstreamWharf.url,
              username: 'bob',
              password: 'wrong-password',
            },
            {
              namespace: 'redirecting',
              upstream: redirectingGate.url,
              username: 'bob',
              password: 'bob-password',
            },
          ],
        },
      },
    });
    host = new URL(wharf.url).host;
    await createUser(wharf, 'alice', 'alice-password');
    await createUser(wharf, 'root', 'root-password');
  }, 300_000);

  afterAll(async () => {
    await wharf?.stop();
    await upstreamWharf?.stop();
    await gate?.stop();
    await tokenGate?.stop();
    await redirectingGate?.stop();
    await storage?.stop();
    await distribution?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('skopeo pulls an image by tag, dockerhub/app mapping to library/app as on Docker Hub', async () => {
    const out = path.join(work, 'pulled-v1');
    await skopeo('copy', '--src-tls-verify=false', `docker://${host}/dockerhub/app:v1`, `oci:${out}:v1`);
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(layout.image.digest);
    expect(gate.count('GET', /^GET \/v2\/library\/app\/manifests\/v1$/)).toBe(1);
    // The long name is the same cached image: no second manifest GET upstream.
    const { stdout } = await skopeo(
      'inspect',
      '--tls-verify=false',
      `docker://${host}/dockerhub/library/app:v1`,
    );
    expect(JSON.parse(stdout).Digest).toBe(layout.image.digest);
    expect(gate.count('GET', /manifests\/v1$/)).toBe(1);
  }, 120_000);

  it('revalidates a tag with HEAD once its TTL is over, and follows a tag that moved upstream', async () => {
    const first = await pushImage(distribution.url, 'library/moving', 'v1', 1024);
    const get = () =>
      fetch(`${wharf.url}/v2/dockerhub/moving/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
    const manifestRequests = (method: string) =>
      gate.count(method, /^\w+ \/v2\/library\/moving\/manifests\/v1$/);
    expect((await get()).headers.get('docker-content-digest')).toBe(first.manifest);
    expect([manifestRequests('GET'), manifestRequests('HEAD')]).toEqual([1, 0]);
    // manifestTtlSeconds is 0 here: every pull asks, with a HEAD (not a pull on Docker Hub).
    expect((await get()).headers.get('docker-content-digest')).toBe(first.manifest);
    expect([manifestRequests('GET'), manifestRequests('HEAD')]).toEqual([1, 1]);
    const second = await pushImage(distribution.url, 'library/moving', 'v1', 1024);
    expect((await get()).headers.get('docker-content-digest')).toBe(second.manifest);
    expect([manifestRequests('GET'), manifestRequests('HEAD')]).toEqual([2, 2]);
    // The old image stays pullable by digest from the cache.
    expect((await fetch(`${wharf.url}/v2/dockerhub/moving/manifests/${first.manifest}`)).status).toBe(200);
    expect(manifestRequests('GET')).toBe(2);
  }, 60_000);

  it('skopeo pulls a multi-platform image by tag (--all)', async () => {
    const out = path.join(work, 'pulled-multi');
    await skopeo(
      'copy',
      '--all',
      '--src-tls-verify=false',
      `docker://${host}/dockerhub/app:multi`,
      `oci:${out}:multi`,
    );
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(layout.index.digest);
    const nested = JSON.parse(
      await readFile(path.join(out, 'blobs', 'sha256', layout.index.digest.slice(7)), 'utf8'),
    );
    expect(nested.manifests).toHaveLength(2);
  }, 120_000);

  it('crane pulls a multi-platform image by digest, and a single platform of it', async () => {
    const out = path.join(work, 'crane-multi');
    await crane(
      'pull',
      '--insecure',
      '--format=oci',
      `${host}/dockerhub/library/app@${layout.index.digest}`,
      out,
    );
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(layout.index.digest);
    const { stdout } = await crane(
      'digest',
      '--insecure',
      '--platform=linux/arm64',
      `${host}/dockerhub/app:multi`,
    );
    const arm = JSON.parse(
      await readFile(path.join(out, 'blobs', 'sha256', layout.index.digest.slice(7)), 'utf8'),
    ).manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'arm64');
    expect(stdout.trim()).toBe(arm.digest);
  }, 120_000);

  it('crane pulls a single-platform image by digest', async () => {
    const out = path.join(work, 'crane-single.tar');
    await crane('pull', '--insecure', `${host}/dockerhub/team/tool@${layout.image.digest}`, out);
    const { stdout } = await crane('digest', '--insecure', `${host}/dockerhub/team/tool:v1`);
    expect(stdout.trim()).toBe(layout.image.digest);
  }, 120_000);

  it('refuses pushes and deletes in a proxy namespace with DENIED: to users, superusers and anonymous callers', async () => {
    await skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', 'alice-password', host);
    await expect(
      skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${path.join(work, 'layout')}:v1`,
        `docker://${host}/dockerhub/app:pushed`,
      ),
    ).rejects.toThrow(/denied/i);
    const auth = await token(
      wharf,
      'repository:dockerhub/app:pull,push,delete',
      basic('alice', 'alice-password'),
    );
    const post = await fetch(`${wharf.url}/v2/dockerhub/app/blobs/uploads/`, {
      method: 'POST',
      headers: auth,
    });
    expect(post.status).toBe(403);
    expect(((await post.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    const anonymous = await fetch(`${wharf.url}/v2/dockerhub/app/manifests/v1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: '{}',
    });
    expect(anonymous.status).toBe(403);
    expect(((await anonymous.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    const remove = await fetch(`${wharf.url}/v2/dockerhub/library/app/manifests/v1`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(remove.status).toBe(403);
    const root = await token(
      wharf,
      'repository:dockerhub/library/app:pull,push,delete',
      basic('root', 'root-password'),
    );
    for (const [method, url] of [
      ['POST', '/v2/dockerhub/library/app/blobs/uploads/'],
      ['DELETE', '/v2/dockerhub/library/app/manifests/v1'],
    ] as const) {
      const refused = await fetch(`${wharf.url}${url}`, { method, headers: root });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    }
    // Still there.
    expect(
      (await fetch(`${wharf.url}/v2/dockerhub/app/manifests/${layout.image.digest}`, { headers: auth }))
        .status,
    ).toBe(200);
  }, 120_000);

  it('stores a layer once: pulled through the cache, then pushed to a private repository', async () => {
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      `docker://${host}/dockerhub/app:v1`,
      `docker://${host}/alice/copy:v1`,
    );
    const manifest = JSON.parse(
      await (
        await fetch(`${wharf.url}/v2/dockerhub/app/manifests/v1`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).text(),
    );
    const layer = parseDigest(manifest.layers[0].digest);
    if (!layer) throw new Error('no layer');
    const linkOf = async (repository: string) =>
      JSON.parse(
        await new Response((await wharf.store.get(keys.link(repository, layer)))?.body as never).text(),
      ).dataKey;
    expect(await linkOf('alice/copy')).toBe(await linkOf('dockerhub/library/app'));
  }, 120_000);

  it('keeps serving cached content with the upstream stopped (stale by tag, with a Warning)', async () => {
    gate.mode = 'down';
    try {
      const out = path.join(work, 'pulled-down');
      await skopeo('copy', '--src-tls-verify=false', `docker://${host}/dockerhub/app:v1`, `oci:${out}:v1`);
      const response = await fetch(`${wharf.url}/v2/dockerhub/app/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('warning')).toMatch(/^110 wharf "Response is stale: upstream unreachable"/);
      // Nothing cached: the client gets an OCI error with a gateway status.
      const missing = await fetch(`${wharf.url}/v2/dockerhub/other/manifests/v1`);
      expect(missing.status).toBe(502);
      expect(((await missing.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('UNKNOWN');
    } finally {
      gate.mode = 'pass';
    }
  }, 120_000);

  it('serves stale content with a Warning when the upstream answers 429, and passes 429 on when nothing is cached', async () => {
    const before = await metric(
      'wharf_oci_proxy_requests_total',
      'proxy="dockerhub",what="manifest",result="stale"',
    );
    const errorsBefore = await metric(
      'wharf_oci_proxy_upstream_responses_total',
      'proxy="dockerhub",status="429"',
    );
    gate.mode = '429';
    try {
      const response = await fetch(`${wharf.url}/v2/dockerhub/app/manifests/multi`, {
        headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-content-digest')).toBe(layout.index.digest);
      expect(response.headers.get('warning')).toBe('110 wharf "Response is stale: upstream answered 429"');
      const out = path.join(work, 'pulled-429');
      await crane('pull', '--insecure', `${host}/dockerhub/app:v1`, out);
      const uncached = await fetch(`${wharf.url}/v2/dockerhub/never/manifests/latest`);
      expect(uncached.status).toBe(429);
      expect(((await uncached.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe(
        'TOOMANYREQUESTS',
      );
    } finally {
      gate.mode = 'pass';
    }
    expect(
      await metric('wharf_oci_proxy_requests_total', 'proxy="dockerhub",what="manifest",result="stale"'),
    ).toBeGreaterThan(before);
    expect(
      await metric('wharf_oci_proxy_upstream_responses_total', 'proxy="dockerhub",status="429"'),
    ).toBeGreaterThan(errorsBefore + 1);
  }, 120_000);

  it(`fetches an uncached ${LAYER_MB} MB layer once for ${CONCURRENT_PULLS} concurrent pulls, all reading along`, async () => {
    gate.mode = 'slow-blobs'; // keeps the fetch in flight for seconds: 5 ms per upstream chunk
    const path_ = new RegExp(`/v2/library/large/blobs/${large.layer}$`);
    const started = performance.now();
    try {
      const pulls = Array.from({ length: CONCURRENT_PULLS }, async () => {
        const response = await fetch(`${wharf.url}/v2/dockerhub/large/blobs/${large.layer}`);
        expect(response.status).toBe(200);
        const hash = createHash('sha256');
        let bytes = 0;
        let firstByte = 0;
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          firstByte ||= performance.now();
          hash.update(chunk);
          bytes += chunk.length;
        }
        return { digest: `sha256:${hash.digest('hex')}`, bytes, firstByte };
      });
      const results = await Promise.all(pulls);
      for (const { digest, bytes } of results)
        expect({ digest, bytes }).toEqual({ digest: large.layer, bytes: large.layerBytes });
      // Every client, not only the one whose request started the fetch, has its first bytes while
      // the upstream is still sending: within the first quarter of the upstream transfer.
      const upstreamDone = gate.completed.find((entry) => path_.test(entry.line))?.at as number;
      const firstBytes = results.map((result) => result.firstByte - started);
      expect(Math.max(...firstBytes)).toBeLessThan((upstreamDone - started) / 4);
    } finally {
      gate.mode = 'pass';
    }
    expect(gate.count('GET', path_)).toBe(1);
    // The metrics tell the bytes from upstream from those served.
    expect(await metric('wharf_oci_proxy_upstream_bytes_total', 'proxy="dockerhub"')).toBeGreaterThanOrEqual(
      large.layerBytes,
    );
    expect(await metric('wharf_oci_proxy_served_bytes_total', 'proxy="dockerhub"')).toBeGreaterThanOrEqual(
      CONCURRENT_PULLS * large.layerBytes,
    );
    // And again, from the store.
    const again = await fetch(`${wharf.url}/v2/dockerhub/library/large/blobs/${large.layer}`, {
      method: 'HEAD',
    });
    expect(again.headers.get('content-length')).toBe(String(large.layerBytes));
    expect(gate.count('GET', path_)).toBe(1);
  }, 300_000);

  it('does not let a stalled client pace the upstream fetch: it reads the rest from the store; a late client too', async () => {
    const image = await pushImage(distribution.url, 'library/paced', 'v1', 24 * 1024 * 1024);
    const blobPath = `/v2/dockerhub/paced/blobs/${image.layer}`;
    const upstreamPath = new RegExp(`/v2/library/paced/blobs/${image.layer}$`);
    gate.slow = true;
    try {
      // The stalled client starts the fetch and reads its first bytes, then nothing until the
      // upstream is done (or 20 s passed: then the fetch waited for it, which is the failure).
      let stalledBytes = 0;
      const upstreamDone = () => gate.completed.some((entry) => upstreamPath.test(entry.line));
      const stalled = new Promise<{
        digest: string;
        bytes: number;
        readWhileStalled: number;
        upstreamDone: boolean;
      }>((resolve, reject) => {
        http
          .get(`${wharf.url}${blobPath}`, (response) => {
            const hash = createHash('sha256');
            response.once('data', () => {
              response.pause();
              const stalledAt = performance.now();
              const waitForUpstream = setInterval(() => {
                if (!upstreamDone() && performance.now() - stalledAt < 20_000) return;
                clearInterval(waitForUpstream);
                const readWhileStalled = stalledBytes;
                const done = upstreamDone();
                response.on('end', () =>
                  resolve({
                    digest: `sha256:${hash.digest('hex')}`,
                    bytes: stalledBytes,
                    readWhileStalled,
                    upstreamDone: done,
                  }),
                );
                response.resume();
              }, 20);
            });
            response.on('data', (chunk: Buffer) => {
              stalledBytes += chunk.length;
              hash.update(chunk);
            });
            response.on('error', reject);
          })
          .on('error', reject);
      });
      while (!gate.requests.some((line) => upstreamPath.test(line))) await sleep(10);
      // A fast client, and one that comes once several MiB went by (past what is kept for late
      // readers): it waits for the blob to be stored, then reads it from the store.
      const fast = fetch(`${wharf.url}${blobPath}`).then(async (r) => Buffer.from(await r.arrayBuffer()));
      await sleep(1500);
      const late = await fetch(`${wharf.url}${blobPath}`);
      expect(late.status).toBe(200);
      const lateBody = Buffer.from(await late.arrayBuffer());
      const [fastBody, slow] = await Promise.all([fast, stalled]);
      for (const body of [fastBody, lateBody])
        expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(image.layer);
      expect(slow.digest).toBe(image.layer);
      expect(slow.bytes).toBe(image.layerBytes);
      // The upstream finished while the stalled client had read only a small part.
      expect(slow.upstreamDone).toBe(true);
      expect(slow.readWhileStalled).toBeLessThan(image.layerBytes / 2);
    } finally {
      gate.slow = false;
    }
    expect(gate.count('GET', upstreamPath)).toBe(1);
  }, 120_000);

  it('answers a Range request on an uncached blob once it is stored', async () => {
    const image = await pushImage(distribution.url, 'library/ranged', 'v1', 512 * 1024);
    const whole = Buffer.from(
      await (await fetch(`${distribution.url}/v2/library/ranged/blobs/${image.layer}`)).arrayBuffer(),
    );
    const response = await fetch(`${wharf.url}/v2/dockerhub/ranged/blobs/${image.layer}`, {
      headers: { range: 'bytes=1000-1999' },
    });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes 1000-1999/${whole.length}`);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(whole.subarray(1000, 2000));
    expect(await wharf.store.head(keys.blob(parseDigest(image.layer) as never))).not.toBeNull();
  }, 60_000);

  it('follows a redirect of a blob GET to another host, as to blob storage', async () => {
    const image = await pushImage(distribution.url, 'library/redirected', 'v1', 256 * 1024);
    const storage = await new ThrottlingProxy(distribution.url).start();
    gate.mode = 'redirect-blobs';
    gate.redirectTo = storage.url;
    try {
      const response = await fetch(`${wharf.url}/v2/dockerhub/redirected/blobs/${image.layer}`);
      expect(response.status).toBe(200);
      const body = Buffer.from(await response.arrayBuffer());
      expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(image.layer);
      expect(storage.count('GET', new RegExp(`/v2/library/redirected/blobs/${image.layer}$`))).toBe(1);
    } finally {
      gate.mode = 'pass';
      await storage.stop();
    }
  }, 60_000);

  it('leaves nothing visible when the upstream blob is corrupt or cut short, and fetches it again next time', async () => {
    const image = await pushImage(distribution.url, 'library/fragile', 'v1', 3 * 1024 * 1024);
    const blobPath = `/v2/dockerhub/fragile/blobs/${image.layer}`;
    const pointer = () => wharf.store.head(keys.blob(parseDigest(image.layer) as never));
    for (const mode of ['corrupt-blobs', 'cut-blobs'] as const) {
      gate.mode = mode;
      gate.slow = true; // the followers join the same fetch
      try {
        // Three clients read along; the status went out before the bytes: every body is cut
        // before its end, never complete.
        const bodies = await Promise.allSettled(
          [0, 1, 2].map(async () => (await fetch(`${wharf.url}${blobPath}`)).arrayBuffer()),
        );
        expect(bodies.map((body) => body.status)).toEqual(['rejected', 'rejected', 'rejected']);
      } finally {
        gate.mode = 'pass';
        gate.slow = false;
      }
      expect(await pointer()).toBeNull();
      expect((await fetch(`${wharf.url}${blobPath}`, { method: 'HEAD' })).status).toBe(200); // upstream HEAD, not cached
      expect(await pointer()).toBeNull();
    }
    const good = Buffer.from(await (await fetch(`${wharf.url}${blobPath}`)).arrayBuffer());
    expect(`sha256:${createHash('sha256').update(good).digest('hex')}`).toBe(image.layer);
    expect(await pointer()).not.toBeNull();
    expect(gate.count('GET', new RegExp(`/v2/library/fragile/blobs/${image.layer}$`))).toBe(3); // one per try
  }, 120_000);

  it('pulls from a token-auth upstream with the configured credentials; without them or with wrong ones, 502 UNAUTHORIZED naming the proxy credentials', async () => {
    await skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', 'alice-password', host);
    const out = path.join(work, 'pulled-private');
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/private/bob/private:v1`,
      `oci:${out}:v1`,
    );
    // skopeo recompresses the uncompressed layer into the layout; inspect shows the digest served.
    const { stdout } = await skopeo(
      'inspect',
      '--tls-verify=false',
      `docker://${host}/private/bob/private:v1`,
    );
    expect(JSON.parse(stdout).Digest).toBe(privateImage.manifest);
    // One token from the upstream's realm (through the same proxy: its Host is the realm's) for
    // everything pulled from bob/private, reused until it expires.
    expect(tokenGate.count('GET', /^GET \/v2\/auth\?/)).toBe(1);
    expect(tokenGate.requests.find((line) => line.startsWith('GET /v2/auth?'))).toContain(
      'scope=repository%3Abob%2Fprivate%3Apull',
    );
    // The proxy has anonymousPull false: anonymous callers are challenged by this wharf.
    const anonymous = await fetch(`${wharf.url}/v2/private/bob/private/manifests/v1`);
    expect(anonymous.status).toBe(401);
    // The upstream refusing the proxy (no credentials, wrong ones): a gateway error that names the
    // proxy's credentials, never a 401 (which tells a client its own wharf login is wrong).
    for (const url of [
      '/v2/nocreds/bob/private/manifests/v1',
      `/v2/nocreds/bob/private/blobs/${privateImage.layer}`,
      '/v2/badcreds/bob/private/manifests/v1',
    ]) {
      const refused = await fetch(`${wharf.url}${url}`);
      expect(refused.status).toBe(502);
      expect(refused.headers.get('www-authenticate')).toBeNull();
      const error = ((await refused.json()) as { errors: { code: string; message: string }[] }).errors[0];
      expect(error?.code).toBe('UNAUTHORIZED');
      expect(error?.message).toMatch(
        /refused this proxy's upstream credentials .*registry\.oci\.proxies.*not yours/,
      );
    }
    expect(wharf.logs()).not.toContain('wrong-password');
    // The upstream password never shows up in the logs.
    expect(wharf.logs()).not.toContain('bob-password');
  }, 120_000);

  it('follows the blob redirect of a token-auth upstream to another origin without its Authorization', async () => {
    const manifest = JSON.parse(
      await (
        await fetch(`${wharf.url}/v2/redirecting/bob/stored/manifests/v1`, {
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).text(),
    ) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]?.digest as string;
    const response = await fetch(`${wharf.url}/v2/redirecting/bob/stored/blobs/${layer}`);
    expect(response.status).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(layer);
    const blobPath = new RegExp(`/v2/bob/stored/blobs/${layer}$`);
    const atRegistry = redirectingGate.requests.findLastIndex(
      (line) => line.startsWith('GET ') && blobPath.test(line),
    );
    const atStorage = storage.requests.findIndex((line) => line.startsWith('GET ') && blobPath.test(line));
    expect(redirectingGate.headers[atRegistry]?.authorization).toMatch(/^Bearer /);
    expect(atStorage).toBeGreaterThanOrEqual(0);
    expect(storage.headers[atStorage]?.authorization).toBeUndefined();
  }, 60_000);

  it('fetches only the upstream repositories a proxy allows', async () => {
    const library = await fetch(`${wharf.url}/v2/limited/library/app/manifests/v1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(library.status).toBe(200);
    const before = gate.requests.length;
    const other = await fetch(`${wharf.url}/v2/limited/team/tool/manifests/v1`);
    expect(other.status).toBe(403);
    expect(((await other.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('DENIED');
    expect(gate.requests.length).toBe(before);
  }, 60_000);
});
