import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import type { TestServer } from '../support/wharf.ts';
import { createUser, startOci, toolPath } from './support.ts';

const run = promisify(execFile);

/**
 * Runs the OCI distribution-spec conformance suite (pinned in hack/conformance.sh), all four
 * workflows, with token authentication on: the suite logs in as a user who owns `conformance/`.
 */
async function runConformance(registry: TestServer, label: string): Promise<void> {
  const binary = await toolPath('conformance');
  const resultsDir = await mkdtemp(path.join(tmpdir(), 'wharf-conformance-'));
  try {
    const host = new URL(registry.url).host;
    const env = {
      ...process.env,
      OCI_REGISTRY: host,
      OCI_TLS: 'disabled',
      OCI_REPO1: 'conformance/repo1',
      OCI_REPO2: 'conformance/nested/repo2',
      OCI_USERNAME: 'conformance',
      OCI_PASSWORD: 'conformance-password',
      OCI_VERSION: '1.1',
      OCI_RESULTS_DIR: resultsDir,
      OCI_LOG: 'warn',
      OCI_API_BLOBS_UPLOAD_CANCEL: 'true',
      OCI_API_MANIFESTS_TAG_PARAM: 'true',
      OCI_DATA_SPARSE: 'false',
    };
    const result = await run(binary, [], {
      env,
      cwd: resultsDir,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 600_000,
    }).catch((error: { stdout?: string; stderr?: string; code?: number }) => error);
    const junit = await readFile(path.join(resultsDir, 'junit.xml'), 'utf8');
    await mkdir('test-results', { recursive: true });
    for (const file of ['junit.xml', 'report.html', 'results.yaml', 'result.yaml']) {
      await copyFile(
        path.join(resultsDir, file),
        path.join('test-results', `oci-conformance-${label}-${file}`),
      ).catch(() => {});
    }
    const suites = /<testsuites[^>]*>/.exec(junit)?.[0] ?? '';
    const attribute = (name: string) => Number(new RegExp(`${name}="(\\d+)"`).exec(suites)?.[1] ?? 0);
    const failed = [...junit.matchAll(/<testcase name="([^"]+)"[^>]*status="failed"/g)].map((m) => m[1]);
    const skipped = [...junit.matchAll(/<testcase name="([^"]+)"[^>]*status="skipped"/g)].map((m) => m[1]);
    const passed = [...junit.matchAll(/<testcase name="([^"]+)"[^>]*status="passed"/g)].length;
    const output = `${(result as { stdout?: string }).stdout ?? ''}`;
    expect(failed, output.slice(-4000)).toEqual([]);
    // No skip at all: every optional API wharf implements (mounts without `from`, tag parameters,
    // upload cancel, sha512) is switched on. Only "sparse manifests" stays disabled: wharf refuses a
    // manifest whose blobs are missing, which the spec allows (MANIFEST_BLOB_UNKNOWN).
    expect(skipped).toEqual([]);
    expect(attribute('failures')).toBe(0);
    expect(attribute('tests')).toBeGreaterThan(900);
    expect(passed).toBe([...junit.matchAll(/<testcase /g)].length);
    expect(output).toContain('Sparse Manifests..............:   Disabled');
    expect((result as { code?: number }).code ?? 0).toBe(0);
  } finally {
    await rm(resultsDir, { recursive: true, force: true });
  }
}

const ALL_WORKFLOWS =
  'passes pull, push, content discovery (with referrers) and content management with auth on';

describe('OCI conformance suite on the fs store', () => {
  let registry: TestServer;
  beforeAll(async () => {
    await toolPath('conformance');
    registry = await startOci({ registry: { oci: { anonymousPull: false } } });
    await createUser(registry, 'conformance', 'conformance-password');
  }, 900_000);
  afterAll(async () => registry?.stop());

  it(ALL_WORKFLOWS, async () => runConformance(registry, 'fs'), 900_000);
});

describe('OCI conformance suite on S3 (MinIO)', () => {
  let minio: MinioServer;
  let registry: TestServer;
  beforeAll(async () => {
    await toolPath('conformance');
    minio = await startMinio();
    const bucket = await minio.createBucket();
    const config = minio.storeConfig(bucket);
    const store = await S3ObjectStore.open(
      config.s3 as NonNullable<typeof config.s3>,
      pino({ level: 'silent' }),
    );
    registry = await startOci(
      {
        registry: {
          oci: { anonymousPull: false, signingKeyEncryptionKey: randomBytes(32).toString('base64') },
        },
      },
      { store },
    );
    await createUser(registry, 'conformance', 'conformance-password');
  }, 900_000);
  afterAll(async () => {
    await registry?.stop();
    await minio?.stop();
  });

  it(ALL_WORKFLOWS, async () => runConformance(registry, 's3'), 900_000);
});
