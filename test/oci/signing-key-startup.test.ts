import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { runWharf, startWharfProcess } from '../support/spawn-wharf.ts';

const SIGNING_KEYS = 'oci/token/signing-keys.json';

/** The real program on a real S3 bucket: where the JWT signing key goes, and what start-up refuses. */
describe('the registry token signing key at rest (MinIO)', () => {
  let minio: MinioServer;
  let bucket: string;
  let work: string;
  const s3Env = () => ({
    ...minio.wharfEnv(bucket),
    WHARF_OCI_GC_ENABLED: 'false',
  });
  const stored = async (): Promise<string | null> => {
    try {
      const object = await minio.client.send(new GetObjectCommand({ Bucket: bucket, Key: SIGNING_KEYS }));
      return (await object.Body?.transformToString()) ?? null;
    } catch {
      return null;
    }
  };
  const jwks = async (url: string) =>
    ((await (await fetch(`${url}/v2/auth/jwks`)).json()) as { keys: { kid: string }[] }).keys.map(
      (k) => k.kid,
    );

  beforeAll(async () => {
    minio = await startMinio();
    work = await mkdtemp(path.join(tmpdir(), 'wharf-signing-'));
  }, 300_000);
  afterAll(async () => {
    await minio?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses to start on S3 without a sealing key or a key file, and writes no key', async () => {
    bucket = await minio.createBucket();
    const run = runWharf({ ...s3Env(), PORT: '0', HOST: '127.0.0.1' });
    expect(await run.exit).toBe(2);
    expect(run.output()).toContain(
      'wharf: cannot generate a signing key: anyone who can read the store could then sign registry tokens. Set registry.oci.signingKeyEncryptionKey (WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY',
    );
    expect(await stored()).toBeNull();
  });

  it('seals the generated key; replicas with the key share it; a wrong key fails start-up clearly', async () => {
    bucket = await minio.createBucket();
    const sealingKey = randomBytes(32).toString('base64');
    const env = { ...s3Env(), WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: sealingKey };
    const [a, b] = await Promise.all([startWharfProcess(env), startWharfProcess(env)]);
    try {
      const document = JSON.parse((await stored())!) as { keys: Record<string, unknown>[] };
      expect(document.keys).toHaveLength(1); // two replicas starting together made one key
      expect(Object.keys(document.keys[0]!).sort()).toEqual([
        'createdAt',
        'kid',
        'publicJwk',
        'sealedPrivateJwk',
      ]);
      expect(JSON.stringify(document)).not.toMatch(/"d":/);
      expect(await jwks(b.url)).toEqual(await jwks(a.url));
      for (const server of [a, b]) expect(server.output()).not.toContain(sealingKey);

      const wrong = runWharf({
        ...env,
        WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
        PORT: '0',
        HOST: '127.0.0.1',
      });
      expect(await wrong.exit).toBe(2);
      expect(wrong.output()).toContain(
        `wharf: the registry token signing key in the store (${SIGNING_KEYS}) does not open with the configured registry.oci.signingKeyEncryptionKey`,
      );
      const short = runWharf({
        ...env,
        WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: 'x'.repeat(40),
        PORT: '0',
        HOST: '127.0.0.1',
      });
      expect(await short.exit).toBe(2);
      expect(short.output()).toContain('"registry.oci.signingKeyEncryptionKey" must be 32 bytes');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('seals a key an earlier version stored in clear, on the first start with a sealing key', async () => {
    bucket = await minio.createBucket();
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const privateJwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    await minio.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: SIGNING_KEYS,
        Body: JSON.stringify({ keys: [{ kid, privateJwk, publicJwk, createdAt: new Date().toISOString() }] }),
      }),
    );
    const server = await startWharfProcess({
      ...s3Env(),
      WHARF_OCI_SIGNING_KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    });
    try {
      expect(await jwks(server.url)).toEqual([kid]); // the same key, not a new one
      const after = (await stored())!;
      expect(after).not.toContain(privateJwk.d!);
      expect(JSON.parse(after).keys[0].sealedPrivateJwk).toMatch(/^v1\./);
      expect(server.output()).toContain('sealed the registry token signing keys in the store');
    } finally {
      await server.stop();
    }
  });

  it('with a key file, writes no key to the store at all', async () => {
    bucket = await minio.createBucket();
    const keyFile = path.join(work, 'private.pem');
    await writeFile(
      keyFile,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const server = await startWharfProcess({ ...s3Env(), WHARF_OCI_SIGNING_KEY_FILE: keyFile });
    try {
      expect(await jwks(server.url)).toHaveLength(1);
      expect(await stored()).toBeNull();
    } finally {
      await server.stop();
    }
  });
});
