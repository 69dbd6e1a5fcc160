import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wharf.ts';
import { digestOf, imageManifest } from './layout.ts';
import { basic, createUser, startOci, toolPath } from './support.ts';

const exec = promisify(execFile);

const CREATED = { amd64: '2026-01-02T03:04:05Z', arm64: '2026-02-03T04:05:06Z' };
const SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SBOM = 'application/spdx+json';

/** An OCI layout with a two-platform index whose configs carry labels and creation times. */
async function writeLayout(dir: string) {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const blob = async (data: Buffer, mediaType: string) => {
    const hex = createHash('sha256').update(data).digest('hex');
    await writeFile(path.join(dir, 'blobs', 'sha256', hex), data);
    return { mediaType, digest: `sha256:${hex}`, size: data.length };
  };
  const image = async (arch: 'amd64' | 'arm64') => {
    const layer = await blob(
      gzipSync(Buffer.from(`${arch} ${'y'.repeat(2000)}`)),
      'application/vnd.oci.image.layer.v1.tar+gzip',
    );
    const config = await blob(
      Buffer.from(
        JSON.stringify({
          architecture: arch,
          os: 'linux',
          created: CREATED[arch],
          config: { Labels: { 'org.opencontainers.image.source': 'https://git.example/web', arch } },
          rootfs: { type: 'layers', diff_ids: [] },
        }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: [layer],
    };
    const stored = await blob(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    return { ...stored, bytes: stored.size + config.size + layer.size };
  };
  const amd64 = await image('amd64');
  const arm64 = await image('arm64');
  const strip = ({ bytes: _, ...descriptor }: typeof amd64) => descriptor;
  const index = await blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { ...strip(amd64), platform: { architecture: 'amd64', os: 'linux' } },
          { ...strip(arm64), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
        ],
      }),
    ),
    'application/vnd.oci.image.index.v1+json',
  );
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...index, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
    }),
  );
  return { amd64, arm64, index };
}

/**
 * API v1's repository page data over a real socket, for content pushed by skopeo (a two-platform
 * index) and oras (a signature and an SBOM attached to it): tag details, platforms, labels,
 * referrers with artifact types, pull commands that skopeo runs as given, paging over 2,000 tags,
 * and tag delete.
 */
describe('API v1 tag and manifest details', () => {
  let server: TestServer;
  let work: string;
  let host: string;
  let layout: Awaited<ReturnType<typeof writeLayout>>;
  let session: Record<string, string>;

  const tool = async (name: 'skopeo' | 'oras', args: string[]) =>
    exec(await toolPath(name), args, { env: { ...process.env, HOME: work }, cwd: work, timeout: 120_000 });
  const api = async (url: string, init: RequestInit = {}) => {
    const res = await fetch(`${server.url}${url}`, { ...init, headers: { ...session, ...init.headers } });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  beforeAll(async () => {
    server = await startOci();
    host = new URL(server.url).host;
    await createUser(server, 'alice', 'alice-password');
    await createUser(server, 'bob', 'bob-password');
    work = await mkdtemp(path.join(tmpdir(), 'wharf-oci-details-'));
    layout = await writeLayout(path.join(work, 'layout'));
    await writeFile(
      path.join(work, 'policy.json'),
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
    );
    const auth = [`--authfile=${path.join(work, 'auth.json')}`];
    await tool('skopeo', [
      'login',
      ...auth,
      '--tls-verify=false',
      '-u',
      'alice',
      '-p',
      'alice-password',
      host,
    ]);
    await tool('skopeo', [
      `--policy=${path.join(work, 'policy.json')}`,
      'copy',
      ...auth,
      '--all',
      '--dest-tls-verify=false',
      `oci:${path.join(work, 'layout')}:v1`,
      `docker://${host}/alice/web:v1`,
    ]);
    const oras = (...args: string[]) =>
      tool('oras', [...args, '--plain-http', '--registry-config', path.join(work, 'oras.json')]);
    await oras('login', '-u', 'alice', '-p', 'alice-password', host);
    await writeFile(path.join(work, 'sig.json'), JSON.stringify({ critical: { image: 'web' } }));
    await writeFile(path.join(work, 'sbom.json'), JSON.stringify({ spdxVersion: 'SPDX-2.3' }));
    await oras('attach', '--artifact-type', SIGNATURE, `${host}/alice/web:v1`, 'sig.json:application/json');
    await oras('attach', '--artifact-type', SBOM, `${host}/alice/web:v1`, 'sbom.json:application/json');
    // An API v1 session, as the web UI holds one.
    const csrf = await fetch(`${server.url}/csrf_token`);
    const cookie = String(csrf.headers.get('set-cookie')).split(';')[0] as string;
    const token = ((await csrf.json()) as { csrf_token: string }).csrf_token;
    const signin = await fetch(`${server.url}/api/v1/signin`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': token, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
    });
    expect(signin.status).toBe(200);
    session = {
      cookie: String(signin.headers.get('set-cookie')).split(';')[0] as string,
      'x-csrf-token': token,
    };
  }, 300_000);

  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('lists tags with size, media type, platforms and creation time (Quay shape)', async () => {
    const { status, body } = await api('/api/v1/repository/alice/web/tag/');
    expect(status).toBe(200);
    expect(body).toMatchObject({ page: 1, has_additional: false, total: 1 });
    expect(body.tags).toEqual([
      {
        name: 'v1',
        reversion: false,
        start_ts: expect.any(Number),
        last_modified: expect.stringMatching(/GMT$/),
        manifest_digest: layout.index.digest,
        is_manifest_list: true,
        size: layout.index.size + layout.amd64.bytes + layout.arm64.bytes,
        media_type: 'application/vnd.oci.image.index.v1+json',
        created: CREATED.arm64,
        platforms: [
          { architecture: 'amd64', os: 'linux' },
          { architecture: 'arm64', os: 'linux', variant: 'v8' },
        ],
      },
    ]);
  });

  it('shows one tag: platforms, referrers with artifact types, pull commands that work', async () => {
    const { status, body } = await api('/api/v1/repository/alice/web/tag/v1');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      name: 'v1',
      digest: layout.index.digest,
      media_type: 'application/vnd.oci.image.index.v1+json',
      is_manifest_list: true,
      created: CREATED.arm64,
      platforms: [
        {
          digest: layout.amd64.digest,
          platform: { architecture: 'amd64', os: 'linux' },
          size: layout.amd64.bytes,
          created: CREATED.amd64,
        },
        {
          digest: layout.arm64.digest,
          platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
          size: layout.arm64.bytes,
          created: CREATED.arm64,
        },
      ],
    });
    const types = body.referrers.map((r: { artifact_type: string }) => r.artifact_type).sort();
    expect(types).toEqual([SBOM, SIGNATURE].sort());
    for (const referrer of body.referrers) {
      expect(referrer.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(referrer.media_type).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(Date.parse(referrer.created)).not.toBeNaN();
    }
    expect(body.pull).toEqual({
      image: `${host}/alice/web`,
      docker: `docker pull ${host}/alice/web:v1`,
      podman: `podman pull --tls-verify=false ${host}/alice/web:v1`,
      skopeo: `skopeo copy --all --src-tls-verify=false docker://${host}/alice/web:v1 oci:web:v1`,
    });
    expect(body.pull_by_digest.docker).toBe(`docker pull ${host}/alice/web@${layout.index.digest}`);
    // The skopeo line, run as a user would paste it (plus this test's credentials and policy).
    const [, command, ...args] = (body.pull.skopeo as string).split(' ');
    await tool('skopeo', [
      `--policy=${path.join(work, 'policy.json')}`,
      command as string,
      `--authfile=${path.join(work, 'auth.json')}`,
      ...args,
    ]);
    const pulled = await tool('skopeo', ['inspect', '--raw', `oci:${path.join(work, 'web')}:v1`]);
    expect(digestOf(Buffer.from(pulled.stdout))).toBe(layout.index.digest);
  }, 120_000);

  it('shows a platform manifest with its config labels; referrers filter by artifact type', async () => {
    const { body } = await api(`/api/v1/repository/alice/web/manifest/${layout.arm64.digest}`);
    expect(body).toMatchObject({
      digest: layout.arm64.digest,
      is_manifest_list: false,
      config_media_type: 'application/vnd.oci.image.config.v1+json',
      created: CREATED.arm64,
      labels: { 'org.opencontainers.image.source': 'https://git.example/web', arch: 'arm64' },
      // A single image's platform, from its config (an index names its images' in `platforms`).
      platform: { os: 'linux', architecture: 'arm64' },
      platforms: [],
      size: layout.arm64.bytes,
      layers: [
        expect.objectContaining({ index: 0, media_type: 'application/vnd.oci.image.layer.v1.tar+gzip' }),
      ],
    });
    expect(JSON.parse(body.manifest_data).config.digest).toMatch(/^sha256:/);
    const labels = await api(`/api/v1/repository/alice/web/manifest/${layout.arm64.digest}/labels`);
    expect(labels.body.labels).toContainEqual(
      expect.objectContaining({ key: 'arch', value: 'arm64', source_type: 'manifest' }),
    );
    const signatures = await api(
      `/api/v1/repository/alice/web/manifest/${layout.index.digest}/referrers?artifactType=${encodeURIComponent(SIGNATURE)}`,
    );
    expect(signatures.body.referrers.map((r: { artifact_type: string }) => r.artifact_type)).toEqual([
      SIGNATURE,
    ]);
    const missing = await api(`/api/v1/repository/alice/web/manifest/sha256:${'0'.repeat(64)}/referrers`);
    expect(missing.status).toBe(404);
    expect((await api('/api/v1/repository/alice/web/manifest/sha256:nothex/referrers')).status).toBe(400);
  });

  it('finds repositories by name or description, only those the caller may pull', async () => {
    expect(
      (
        await api('/api/v1/repository/alice/web', {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ description: 'The storefront' }),
        })
      ).status,
    ).toBe(200);
    const byName = await api('/api/v1/find/repositories?query=web');
    expect(byName.body.results).toEqual([
      expect.objectContaining({
        kind: 'repository',
        name: 'web',
        namespace: expect.objectContaining({ name: 'alice' }),
        description: 'The storefront',
        is_public: false,
      }),
    ]);
    const byDescription = await api('/api/v1/find/repositories?query=storefront');
    expect(byDescription.body.results.map((r: { name: string }) => r.name)).toEqual(['web']);
    const anonymous = await fetch(`${server.url}/api/v1/find/repositories?query=web`);
    expect(((await anonymous.json()) as { results: unknown[] }).results).toEqual([]);
    expect((await api(`/api/v1/find/repositories?query=${'q'.repeat(256)}`)).status).toBe(400);
  });

  it('pages 2,000 tags; specificTag and filter_tag_name as Quay', { timeout: 300_000 }, async () => {
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const manifest = imageManifest(config);
    const token = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/many:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    }).then(async (r) => ((await r.json()) as { token: string }).token);
    const v2 = { authorization: `Bearer ${token}` };
    const upload = await fetch(`${server.url}/v2/alice/many/blobs/uploads/?digest=${digestOf(config)}`, {
      method: 'POST',
      headers: { ...v2, 'content-type': 'application/octet-stream' },
      body: config,
    });
    expect(upload.status).toBe(201);
    const names = Array.from({ length: 2000 }, (_, i) => `build-${String(i).padStart(4, '0')}`);
    for (let start = 0; start < names.length; start += 20)
      await Promise.all(
        names.slice(start, start + 20).map(async (tag) => {
          const res = await fetch(`${server.url}/v2/alice/many/manifests/${tag}`, {
            method: 'PUT',
            headers: { ...v2, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
            body: manifest,
          });
          expect(res.status).toBe(201);
        }),
      );
    const first = await api('/api/v1/repository/alice/many/tag/?limit=100&page=1');
    expect(first.body.tags).toHaveLength(100);
    expect(first.body).toMatchObject({ page: 1, has_additional: true, total: 2000 });
    const last = await api('/api/v1/repository/alice/many/tag/?limit=100&page=20');
    expect(last.body.tags).toHaveLength(100);
    expect(last.body.has_additional).toBe(false);
    const seen = new Set<string>();
    for (let page = 1; page <= 20; page++) {
      const { body } = await api(`/api/v1/repository/alice/many/tag/?limit=100&page=${page}`);
      for (const tag of body.tags) seen.add(tag.name);
    }
    expect(seen.size).toBe(2000);
    const one = await api('/api/v1/repository/alice/many/tag/?specificTag=build-1234');
    expect(one.body.tags.map((t: { name: string }) => t.name)).toEqual(['build-1234']);
    expect(one.body.tags[0]).toMatchObject({
      manifest_digest: digestOf(manifest),
      size: manifest.length + config.length,
    });
    const like = await api('/api/v1/repository/alice/many/tag/?filter_tag_name=like:build-199&limit=100');
    expect(like.body.total).toBe(10);
    expect((await api('/api/v1/repository/alice/many/tag/?filter_tag_name=regex:x')).status).toBe(400);
    expect((await api('/api/v1/repository/alice/many/tag/?limit=1000')).body.tags).toHaveLength(100);
  });

  it('deletes a tag as DELETE /v2/…/manifests/<tag> does: the manifest stays, other tags stay', async () => {
    const bob = await fetch(`${server.url}/api/v1/repository/alice/many/tag/build-0001`, {
      method: 'DELETE',
      headers: { authorization: basic('bob', 'bob-password') },
    });
    expect(bob.status).toBe(401);
    const deleted = await api('/api/v1/repository/alice/many/tag/build-0001', { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    expect((await api('/api/v1/repository/alice/many/tag/build-0001')).status).toBe(404);
    expect((await api('/api/v1/repository/alice/many/tag/build-0001', { method: 'DELETE' })).status).toBe(
      404,
    );
    expect((await api('/api/v1/repository/alice/many/tag/build-0002')).status).toBe(200);
    expect((await api('/api/v1/repository/alice/many/tag/')).body.total).toBe(1999);
  });
});
