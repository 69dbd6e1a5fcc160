import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wharf.ts';
import { writeOciLayout } from './layout.ts';
import { createUser, startOci, toolPath } from './support.ts';

const exec = promisify(execFile);

/** Real clients against a real server: skopeo (copy, --all, inspect, delete) and oras (attach, discover). */
describe('OCI clients', () => {
  let server: TestServer;
  let work: string;
  let host: string;
  let layout: Awaited<ReturnType<typeof writeOciLayout>>;

  beforeAll(async () => {
    server = await startOci();
    host = new URL(server.url).host;
    await createUser(server, 'alice', 'alice-password');
    work = await mkdtemp(path.join(tmpdir(), 'wharf-oci-clients-'));
    layout = await writeOciLayout(path.join(work, 'layout'));
    await writeFile(
      path.join(work, 'policy.json'),
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
    );
  }, 300_000);

  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe('skopeo', () => {
    const skopeo = async (...args: string[]) => {
      const binary = await toolPath('skopeo');
      const [command, ...rest] = args;
      const common = [`--authfile=${path.join(work, 'auth.json')}`];
      const policy = command === 'copy' ? [`--policy=${path.join(work, 'policy.json')}`] : [];
      return exec(binary, [...policy, command as string, ...common, ...rest], {
        env: { ...process.env, HOME: work },
        timeout: 120_000,
      });
    };

    it('logs in with a password', async () => {
      const { stdout } = await skopeo(
        'login',
        '--tls-verify=false',
        '-u',
        'alice',
        '-p',
        'alice-password',
        host,
      );
      expect(stdout).toContain('Login Succeeded');
      await expect(
        skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', 'wrong-password', host),
      ).rejects.toThrow();
    }, 120_000);

    it('copies an image from an OCI layout directory, then inspects it', async () => {
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${path.join(work, 'layout')}:v1`,
        `docker://${host}/alice/app:v1`,
      );
      const { stdout } = await skopeo('inspect', '--tls-verify=false', `docker://${host}/alice/app:v1`);
      const info = JSON.parse(stdout);
      expect(info.Digest).toBe(layout.image.digest);
      expect(info.Architecture).toBe('amd64');
    }, 120_000);

    it('copies wharf to wharf across repositories (blobs mounted, same digest)', async () => {
      await skopeo(
        'copy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${host}/alice/app:v1`,
        `docker://${host}/alice/team/copy:v1`,
      );
      const { stdout } = await skopeo('inspect', '--tls-verify=false', `docker://${host}/alice/team/copy:v1`);
      expect(JSON.parse(stdout).Digest).toBe(layout.image.digest);
    }, 120_000);

    it('copies a multi-architecture index with --all', async () => {
      await skopeo(
        'copy',
        '--all',
        '--dest-tls-verify=false',
        `oci:${path.join(work, 'layout')}:multi`,
        `docker://${host}/alice/multi:v1`,
      );
      const { stdout } = await skopeo(
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${host}/alice/multi:v1`,
      );
      const index = JSON.parse(stdout);
      expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(
        index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ).toEqual(['amd64', 'arm64']);
      const arm = await skopeo(
        'inspect',
        '--tls-verify=false',
        '--override-arch=arm64',
        `docker://${host}/alice/multi:v1`,
      );
      expect(JSON.parse(arm.stdout).Architecture).toBe('arm64');
    }, 120_000);

    it('deletes an image', async () => {
      await skopeo('delete', '--tls-verify=false', `docker://${host}/alice/team/copy:v1`);
      await expect(
        skopeo('inspect', '--tls-verify=false', `docker://${host}/alice/team/copy:v1`),
      ).rejects.toThrow(/manifest unknown|not found/i);
      // The source repository is untouched.
      const { stdout } = await skopeo('inspect', '--tls-verify=false', `docker://${host}/alice/app:v1`);
      expect(JSON.parse(stdout).Digest).toBe(layout.image.digest);
    }, 120_000);
  });

  describe('oras', () => {
    const oras = async (...args: string[]) => {
      const binary = await toolPath('oras');
      return exec(binary, [...args, '--plain-http', '--registry-config', path.join(work, 'oras.json')], {
        env: { ...process.env, HOME: work },
        cwd: work,
        timeout: 120_000,
      });
    };

    it('attaches an artifact to an image and discovers it through the referrers API', async () => {
      await oras('login', '-u', 'alice', '-p', 'alice-password', host);
      await writeFile(path.join(work, 'sbom.json'), JSON.stringify({ spdxVersion: 'SPDX-2.3' }));
      await oras(
        'attach',
        '--artifact-type',
        'application/vnd.example.sbom+json',
        `${host}/alice/app:v1`,
        'sbom.json:application/json',
      );
      const { stdout } = await oras('discover', '--format', 'json', `${host}/alice/app:v1`);
      const found = JSON.parse(stdout);
      const referrers = found.referrers ?? found.manifests;
      expect(referrers).toHaveLength(1);
      expect(referrers[0].artifactType).toBe('application/vnd.example.sbom+json');
      const filtered = await server.wharf.app.inject({
        method: 'GET',
        url: `/v2/alice/app/referrers/${layout.image.digest}?artifactType=application/other`,
        headers: {
          authorization: `Bearer ${
            (
              await server.wharf.app.inject({
                method: 'GET',
                url: '/v2/auth?service=wharf&scope=repository:alice/app:pull',
                headers: { authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}` },
              })
            ).json().token
          }`,
        },
      });
      expect(filtered.headers['oci-filters-applied']).toBe('artifactType');
      expect(filtered.json().manifests).toEqual([]);
    }, 120_000);
  });
});
