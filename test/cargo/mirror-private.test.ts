import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cargo, cargoHome, writeCrate } from './cargo-cli.ts';
import { allKeys, startRegistry, type TestRegistry } from './support.ts';

/**
 * The real cargo, a private mirror (authRequired) and a private upstream: the mirror reaches the
 * upstream with `mirror.upstreamToken`, and cargo reaches the mirror only when the mirror is
 * declared under `[registries]` (a `[source]` entry cannot carry a token: docs/cargo.md).
 */
const TIMEOUT = 300_000;
let upstream: TestRegistry;
let mirror: TestRegistry;
let work: string;
let targetDir: string;
let mirrorToken: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'wharf-cargo-mirror-'));
  targetDir = path.join(work, 'target');
  upstream = await startRegistry({ cargo: { authRequired: true } });
  const publisher = await upstream.accounts.addUser('dave');
  const reader = await upstream.accounts.addUser('mirror-reader');
  const home = await cargoHome(`[registries.up]\nindex = "sparse+${upstream.url}/index/"\n`);
  const crate = await writeCrate(work, {
    name: 'privdep',
    version: '0.2.0',
    files: { 'src/lib.rs': 'pub fn value() -> u32 { 42 }\n' },
  });
  const published = await cargo(['publish', '--no-verify', '--registry', 'up'], {
    cwd: crate,
    home,
    targetDir,
    env: { CARGO_REGISTRIES_UP_TOKEN: publisher },
  });
  expect(published.code, published.stderr).toBe(0);
  mirror = await startRegistry({
    cargo: {
      authRequired: true,
      mirror: {
        enabled: true,
        upstreamIndex: `${upstream.url}/index/`,
        indexTtlSeconds: 0,
        upstreamToken: reader,
      },
    },
  });
  mirrorToken = await mirror.accounts.addUser('erin');
}, TIMEOUT);

afterAll(async () => {
  await mirror?.close();
  await upstream?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('private crates.io mirror of a private upstream', () => {
  const user = () =>
    writeCrate(work, {
      name: 'private-mirror-user',
      version: '0.1.0',
      manifest: '\n[dependencies]\nprivdep = "0.2"\n',
      files: { 'src/main.rs': 'fn main() { print!("{}", privdep::value()); }\n' },
    });

  it('a mirror declared only under [source] cannot be given a token: cargo refuses', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await cargoHome(
      `[source.crates-io]\nreplace-with = "wharf-mirror"\n\n[source.wharf-mirror]\nregistry = "sparse+${mirror.url}/mirror/index/"\n`,
    );
    const result = await cargo(['generate-lockfile'], {
      cwd: await user(),
      home,
      targetDir,
      env: { CARGO_REGISTRIES_WHARF_MIRROR_TOKEN: mirrorToken },
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/no token found for `?wharf-mirror`?/);
  });

  it('declared under [registries] and replacing crates-io, cargo builds through it with its token', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await cargoHome(
      `[registries.wharf-mirror]\nindex = "sparse+${mirror.url}/mirror/index/"\n\n[source.crates-io]\nreplace-with = "wharf-mirror"\n`,
    );
    const result = await cargo(['run', '--quiet'], {
      cwd: await user(),
      home,
      targetDir,
      env: { CARGO_REGISTRIES_WHARF_MIRROR_TOKEN: mirrorToken },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('42');
  });

  it('without the upstream token, the mirror answers 502 and caches nothing', {
    timeout: TIMEOUT,
  }, async () => {
    const tokenless = await startRegistry({
      cargo: { mirror: { enabled: true, upstreamIndex: `${upstream.url}/index/`, indexTtlSeconds: 0 } },
    });
    try {
      const response = await fetch(`${tokenless.url}/mirror/index/pr/iv/privdep`);
      expect(response.status).toBe(502);
      expect(await response.text()).toMatch(/upstream registry answered 401/);
      expect(await allKeys(tokenless.store, 'cargo/mirror/')).toEqual([]);
    } finally {
      await tokenless.close();
    }
  });
});
