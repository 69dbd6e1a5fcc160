import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { THROTTLE_PREFIX } from '../../server/identity/keys.ts';
import { type Answer, requestFrom } from '../support/from-address.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';

const LIMITS = { perAccountAndAddress: 3, perAccount: 6, perAddress: 8 };

/**
 * Password limits across AuthService replicas that share only a MinIO bucket: a failure taken by
 * one process counts on the other, so moving to another replica resets nothing.
 */
describe('password limits across two AuthService processes on one MinIO bucket', () => {
  let minio: MinioServer;
  let configDir: string;
  const started: WharfProcess[] = [];

  beforeAll(async () => {
    minio = await startMinio();
    configDir = await mkdtemp(path.join(tmpdir(), 'wharf-limits-'));
  });
  afterAll(async () => {
    await Promise.all(started.map((process) => process.stop()));
    await minio?.stop();
    await rm(configDir, { recursive: true, force: true });
  });

  /** Two processes on a fresh bucket with these limits. */
  async function twoReplicas(windowSeconds: number): Promise<{ a: string; b: string; bucket: string }> {
    const bucket = await minio.createBucket();
    const configFile = path.join(configDir, `${bucket}.json`);
    await writeFile(
      configFile,
      JSON.stringify({ roles: ['auth'], auth: { signup: 'open', rateLimit: { ...LIMITS, windowSeconds } } }),
    );
    const env = {
      WHARF_CONFIG: configFile,
      ...minio.wharfEnv(bucket),
    };
    const pair = await Promise.all([startWharfProcess(env), startWharfProcess(env)]);
    started.push(...pair);
    return { a: pair[0]!.url, b: pair[1]!.url, bucket };
  }

  const login = (base: string, from: string, user: string, password: string) =>
    requestFrom(from, `${base}/ktra/api/v1/login/${user}`, { method: 'POST', json: { password } });
  const signUp = async (base: string, user: string) =>
    expect(
      (
        await requestFrom('127.0.0.1', `${base}/ktra/api/v1/new_user/${user}`, {
          method: 'POST',
          json: { password: `${user}-password` },
        })
      ).status,
    ).toBe(200);
  const expectRefused = (answer: Answer, windowSeconds: number) => {
    expect(answer.status).toBe(429);
    expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(windowSeconds);
  };
  const throttleObjects = async (bucket: string) =>
    (
      (await minio.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: THROTTLE_PREFIX })))
        .Contents ?? []
    ).map((object) => `${object.Key} ${object.ETag}`);

  describe('with a long window', () => {
    const WINDOW = 600;
    let a: string;
    let b: string;
    let bucket: string;
    beforeAll(async () => {
      ({ a, b, bucket } = await twoReplicas(WINDOW));
    });

    it('a source that guessed on one replica is refused on the other; the user is not', async () => {
      await signUp(a, 'una');
      const attacker = '127.0.10.1';
      for (const base of [a, b, a]) expect((await login(base, attacker, 'una', 'guess')).status).toBe(403);
      expectRefused(await login(b, attacker, 'una', 'una-password'), WINDOW);
      expectRefused(await login(a, attacker, 'una', 'una-password'), WINDOW);
      const before = await throttleObjects(bucket);
      expect(before).toHaveLength(3); // (una, attacker), una, attacker
      expect((await login(b, '127.0.10.2', 'una', 'una-password')).status).toBe(200);
      expect((await login(a, '127.0.10.3', 'una', 'una-password')).status).toBe(200);
      // Successes wrote no counter.
      expect(await throttleObjects(bucket)).toEqual(before);
    });

    it('the per-account bound holds across replicas: past it, one guess per new address', async () => {
      await signUp(a, 'bea');
      const failures = async (base: string, bot: string) => {
        let count = 0;
        for (let i = 0; i < 4; i++) {
          const answer = await login(base, bot, 'bea', `${bot}-${i}`);
          if (answer.status === 403) count++;
          else expectRefused(answer, WINDOW);
        }
        return count;
      };
      expect(await failures(a, '127.0.11.1')).toBe(3);
      expect(await failures(b, '127.0.11.2')).toBe(3);
      expect(await failures(a, '127.0.11.3')).toBe(1);
      expect(await failures(b, '127.0.11.4')).toBe(1);
      expectRefused(await login(a, '127.0.11.4', 'bea', 'bea-password'), WINDOW);
      expect((await login(b, '127.0.11.99', 'bea', 'bea-password')).status).toBe(200);
    });

    it('the per-address bound holds across replicas', async () => {
      const stuffer = '127.0.12.1';
      for (let i = 0; i < LIMITS.perAddress; i++)
        expect((await login(i % 2 ? a : b, stuffer, `victim${i}`, 'leaked')).status).toBe(403);
      expectRefused(await login(a, stuffer, 'victim99', 'leaked'), WINDOW);
      expectRefused(await login(b, stuffer, 'victim98', 'leaked'), WINDOW);
    });

    it('a parallel burst split over both replicas gets at most the limit once per replica', async () => {
      await signUp(a, 'pia');
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => login(i % 2 ? a : b, '127.0.13.1', 'pia', `burst-${i}`)),
      );
      const failed = answers.filter((answer) => answer.status === 403).length;
      expect(answers.every((answer) => answer.status === 403 || answer.status === 429)).toBe(true);
      // Each process counts its own checks in flight; the two only meet in the store.
      expect(failed).toBeGreaterThanOrEqual(LIMITS.perAccountAndAddress);
      expect(failed).toBeLessThanOrEqual(2 * LIMITS.perAccountAndAddress);
      expectRefused(await login(a, '127.0.13.1', 'pia', 'pia-password'), WINDOW);
    });
  });

  describe('with a short window', () => {
    const WINDOW = 5;
    let a: string;
    let b: string;
    let bucket: string;
    beforeAll(async () => {
      ({ a, b, bucket } = await twoReplicas(WINDOW));
    });

    it('Retry-After is honest on every replica, and expired counters are swept from the bucket', async () => {
      await signUp(a, 'tom');
      const attacker = '127.0.14.1';
      for (const base of [a, b, a]) expect((await login(base, attacker, 'tom', 'guess')).status).toBe(403);
      const refused = await login(b, attacker, 'tom', 'tom-password');
      expectRefused(refused, WINDOW);
      expect(await throttleObjects(bucket)).toHaveLength(3);
      await new Promise((resolve) => setTimeout(resolve, Number(refused.headers['retry-after']) * 1000));
      expect((await login(b, attacker, 'tom', 'tom-password')).status).toBe(200);
      // Each replica sweeps once per window what was last written two windows ago.
      const deadline = Date.now() + 6 * WINDOW * 1000;
      while ((await throttleObjects(bucket)).length > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await throttleObjects(bucket)).toEqual([]);
    }, 60_000);
  });
});
