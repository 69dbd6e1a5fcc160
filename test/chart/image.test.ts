/**
 * The image's build inputs, without Docker (this machine has no engine): hack/build-image.sh's pin
 * check, the Dockerfile's reproducibility settings, and the SBOM hack/sbom.ts writes for the image.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/tools.ts';

const run = promisify(execFile);
const dockerfile = readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');

async function checkPins(text?: string) {
  const env = { ...process.env };
  if (text !== undefined) {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'wharf-dockerfile-')), 'Dockerfile');
    await writeFile(file, text);
    env.DOCKERFILE = file;
  }
  return run('bash', ['hack/build-image.sh', '--check'], { cwd: REPO_ROOT, env }).then(
    ({ stderr }) => ({ code: 0, stderr }),
    (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
  );
}

describe('the image build', () => {
  it('pins every base image by digest, and build-image.sh refuses one that is not', async () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim@sha256:[0-9a-f]{64}$/m);
    const froms = dockerfile.match(/^FROM .*/gm)!;
    expect(froms).toHaveLength(3);
    for (const from of froms) expect(from).toMatch(/^FROM \$\{NODE_IMAGE\}( AS \w+)?$/);
    expect(await checkPins()).toMatchObject({ code: 0 });
    const byTag = await checkPins(
      dockerfile.replace(/^ARG NODE_IMAGE=.*$/m, 'ARG NODE_IMAGE=node:24-bookworm-slim'),
    );
    expect(byTag.code).toBe(1);
    expect(byTag.stderr).toContain("base image 'node:24-bookworm-slim' is not pinned by digest");
    // An earlier stage may be a base; any other image must carry its digest.
    const pinned = `node@sha256:${'a'.repeat(64)}`;
    expect(await checkPins(`FROM ${pinned} AS base\nFROM base\n`)).toMatchObject({ code: 0 });
    const extra = await checkPins(`FROM ${pinned} AS base\nFROM base\nFROM alpine:3\n`);
    expect(extra).toMatchObject({ code: 1 });
    expect(extra.stderr).toContain("'alpine:3'");
  });

  it('installs from the lock file and passes SOURCE_DATE_EPOCH to the stages that write files', () => {
    expect(dockerfile).not.toMatch(/npm install/);
    expect(dockerfile.match(/RUN npm ci\b/g)).toHaveLength(2);
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages[0]).toMatch(/^ARG SOURCE_DATE_EPOCH$/m);
    expect(stages[2]).toMatch(/^ARG SOURCE_DATE_EPOCH$/m);
    const script = readFileSync(path.join(REPO_ROOT, 'hack/build-image.sh'), 'utf8');
    expect(script).toMatch(/--build-arg SOURCE_DATE_EPOCH/);
    expect(script).toMatch(/rewrite-timestamp=true/);
    expect(script).toMatch(/--provenance=false/);
  });
});

describe('the SBOM', () => {
  const sbom = async (epoch: string) =>
    (
      await run(process.execPath, ['hack/sbom.ts'], {
        cwd: REPO_ROOT,
        env: { ...process.env, SOURCE_DATE_EPOCH: epoch },
        maxBuffer: 64 * 1024 * 1024,
      })
    ).stdout;

  it('is CycloneDX of exactly the production packages of the lock file, the same bytes every time', async () => {
    const [first, second] = [await sbom('1700000000'), await sbom('1700000000')];
    expect(second).toBe(first);
    const bom = JSON.parse(first) as {
      bomFormat: string;
      specVersion: string;
      serialNumber: string;
      metadata: { timestamp: string; component: { 'bom-ref': string; name: string; version: string } };
      components: { 'bom-ref': string; name: string; version: string; purl: string }[];
      dependencies: { ref: string; dependsOn?: string[] }[];
    };
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.serialNumber).toMatch(
      /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(bom.metadata.timestamp).toBe('2023-11-14T22:13:20.000Z');
    const packageJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
    expect(bom.metadata.component).toMatchObject({ name: 'wharf', version: packageJson.version });
    const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version: string; dev?: boolean }>;
    };
    const versions = new Map(bom.components.map((component) => [component.name, component.version]));
    for (const name of Object.keys(packageJson.dependencies))
      expect(versions.get(name), name).toBe(lock.packages[`node_modules/${name}`]!.version);
    for (const name of ['vitest', 'typescript', '@biomejs/biome', 'vite', 'playwright-core'])
      expect(versions.has(name), name).toBe(false);
    // Every production package of the lock is listed: what `npm ci --omit=dev` puts in the image.
    const production = Object.entries(lock.packages).filter(
      ([key, entry]) => key.startsWith('node_modules/') && !entry.dev,
    );
    const listed = new Set(bom.components.map((component) => `${component.name}@${component.version}`));
    const missing = production
      .map(
        ([key, entry]) =>
          `${key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${entry.version}`,
      )
      .filter((id) => !listed.has(id));
    expect(missing).toEqual([]);
    // The dependency graph names only what is listed.
    const refs = new Set([bom.metadata.component['bom-ref'], ...bom.components.map((c) => c['bom-ref'])]);
    for (const dependency of bom.dependencies) {
      expect(refs.has(dependency.ref), dependency.ref).toBe(true);
      for (const ref of dependency.dependsOn ?? []) expect(refs.has(ref), ref).toBe(true);
    }
    // Another SOURCE_DATE_EPOCH changes only the timestamp.
    const later = JSON.parse(await sbom('1800000000'));
    expect({ ...later, metadata: { ...later.metadata, timestamp: '' } }).toEqual({
      ...bom,
      metadata: { ...bom.metadata, timestamp: '' },
    });
  }, 60_000);
});
