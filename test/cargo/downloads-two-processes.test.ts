import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWharfProcess, type WharfProcess } from '../support/spawn-wharf.ts';
import { metadata, publishBody, simpleCrate } from './crate-file.ts';

/**
 * Two registry processes on one store count downloads in memory and merge them into the same
 * document: every download counts once, whichever process served it, including those still in
 * memory when a process is stopped.
 */
describe('download counts of two processes on one store', () => {
  let dir: string;
  let a: WharfProcess;
  let b: WharfProcess;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-downloads-'));
    const configFile = path.join(dir, 'wharf.json');
    await writeFile(
      configFile,
      JSON.stringify({
        roles: ['auth', 'registry'],
        logLevel: 'warn',
        store: { dataDir: path.join(dir, 'data') },
        auth: { signup: 'open' },
        registry: { cargo: { downloadsFlushSeconds: 1 } },
      }),
    );
    [a, b] = await Promise.all([
      startWharfProcess({ WHARF_CONFIG: configFile, WHARF_LOG_LEVEL: 'info' }),
      startWharfProcess({ WHARF_CONFIG: configFile, WHARF_LOG_LEVEL: 'info' }),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  const downloads = async (server: WharfProcess) => {
    const res = await fetch(`${server.url}/api/v1/crates/counted/versions`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { versions: { num: string; downloads: number }[] };
    return Object.fromEntries(body.versions.map((v) => [v.num, v.downloads]));
  };

  it('add up across processes, flushes and a shutdown', { timeout: 120_000 }, async () => {
    const signup = await fetch(`${a.url}/ktra/api/v1/new_user/alice`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'correct horse battery staple' }),
    });
    const { token } = (await signup.json()) as { token: string };
    for (const version of ['1.0.0', '2.0.0']) {
      const res = await fetch(`${a.url}/api/v1/crates/new`, {
        method: 'PUT',
        headers: { authorization: token },
        body: publishBody(metadata('counted', version), await simpleCrate('counted', version)),
      });
      expect(res.status, await res.text()).toBe(200);
    }
    // 150 downloads on each process, interleaved over ~3 flush intervals, so flushes of the two
    // processes meet on the same document.
    const hit = async (server: WharfProcess, version: string) =>
      expect((await fetch(`${server.url}/api/v1/crates/counted/${version}/download`)).status).toBe(200);
    for (let round = 0; round < 15; round++) {
      await Promise.all([
        ...Array.from({ length: 5 }, () => hit(a, '1.0.0')),
        ...Array.from({ length: 5 }, () => hit(b, '1.0.0')),
        ...Array.from({ length: 5 }, () => hit(a, '2.0.0')),
        ...Array.from({ length: 5 }, () => hit(b, '2.0.0')),
      ]);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Each process sees the other's counts once they are flushed (every second here).
    const deadline = Date.now() + 10_000;
    let seen = await downloads(a);
    while (Date.now() < deadline && seen['1.0.0'] !== 150) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      seen = await downloads(a);
    }
    // And no count dips while a flush is under way (they stay visible until written).
    for (let i = 0; i < 10; i++) {
      expect(await downloads(a)).toEqual({ '1.0.0': 150, '2.0.0': 150 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(seen).toEqual({ '1.0.0': 150, '2.0.0': 150 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await downloads(b)).toEqual({ '1.0.0': 150, '2.0.0': 150 });

    // Counts still in memory when a process stops are written on its way out.
    await Promise.all(Array.from({ length: 25 }, () => hit(b, '2.0.0')));
    expect(await b.stop()).toBe(0);
    expect(await downloads(a)).toEqual({ '1.0.0': 150, '2.0.0': 175 });
  });
});
