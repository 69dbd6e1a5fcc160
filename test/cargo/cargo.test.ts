import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cargo, cargoHome, cargoVersion, registryToml, writeCrate } from './cargo-cli.ts';
import { allKeys, startRegistry, type TestRegistry } from './support.ts';

/**
 * The real cargo against wharf. Each test has its own CARGO_HOME; the target dir is shared by the
 * file so that crates compile once. No internet: every crate depends only on this registry's crates.
 */
const TIMEOUT = 300_000;
let a: TestRegistry;
let work: string;
let targetDir: string;
let alice: string;
let bob: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'wharf-cargo-work-'));
  targetDir = path.join(work, 'target');
  a = await startRegistry({ cargo: { maxCrateBytes: 256 * 1024 } });
  await a.accounts.addUser('alice', { groups: ['devs'] });
  await a.accounts.addUser('bob');
  alice = await a.accounts.token('alice');
  bob = await a.accounts.token('bob');
  console.info(`cargo under test: ${cargoVersion()}`);
});
afterAll(async () => {
  await a?.close();
  await rm(work, { recursive: true, force: true });
});

const homeFor = () => cargoHome(registryToml('wharf', a.url));
const run = (args: string[], cwd: string, home: string, env: Record<string, string> = {}) =>
  cargo(args, { cwd, home, targetDir, env });

async function publish(dir: string, home: string, token: string, extra: string[] = ['--no-verify']) {
  return run(['publish', '--registry', 'wharf', ...extra], dir, home, {
    CARGO_REGISTRIES_WHARF_TOKEN: token,
  });
}

async function indexLines(name: string) {
  const res = await fetch(
    `${a.url}/index/${name.length > 3 ? `${name.slice(0, 2)}/${name.slice(2, 4)}/` : ''}${name}`,
  );
  return (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

const base = (version: string) =>
  writeCrate(work, {
    name: 'base',
    version,
    manifest: '\n[features]\ndefault = ["std"]\nstd = []\nextra = []\n',
    files: { 'src/lib.rs': `pub fn base() -> &'static str { "${version}" }\n` },
  });

describe('cargo against wharf', () => {
  it('cargo login stores the token; cargo publish (verified) works with it', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await homeFor();
    const login = await cargo(['login', '--registry', 'wharf'], {
      cwd: work,
      home,
      targetDir,
      input: `${alice}\n`,
    });
    expect(login.code, login.stderr).toBe(0);
    expect(await readFile(path.join(home, 'credentials.toml'), 'utf8')).toContain(alice);
    const dir = await base('1.0.0');
    const result = await run(['publish', '--registry', 'wharf'], dir, home);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/Published base v1\.0\.0/);
    const [line] = await indexLines('base');
    expect(line).toMatchObject({
      name: 'base',
      vers: '1.0.0',
      features: { default: ['std'], std: [], extra: [] },
    });
  });

  it('publishes crates with features, optional, renamed, target-specific and build dependencies', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await homeFor();
    expect((await publish(await base('1.0.1'), home, alice)).code).toBe(0);
    const helper = await writeCrate(work, {
      name: 'helper',
      version: '0.1.0',
      files: { 'src/lib.rs': 'pub fn help() -> u8 { 7 }\n' },
    });
    expect((await publish(helper, home, alice)).code).toBe(0);
    const util = await writeCrate(work, {
      name: 'util',
      version: '0.3.0',
      files: { 'src/lib.rs': 'pub fn u() -> u8 { 3 }\n' },
    });
    expect((await publish(util, home, alice)).code).toBe(0);
    const opt = await writeCrate(work, {
      name: 'opt',
      version: '0.1.0',
      files: { 'src/lib.rs': 'pub fn o() -> u8 { 9 }\n' },
    });
    expect((await publish(opt, home, alice)).code).toBe(0);
    const appLib = await writeCrate(work, {
      name: 'app-lib',
      version: '0.2.0',
      manifest: `rust-version = "1.60"
build = "build.rs"

[dependencies]
base = { version = "1", registry = "wharf", default-features = false, features = ["extra"] }
renamed_util = { package = "util", version = "0.3", registry = "wharf" }
opt = { version = "0.1", registry = "wharf", optional = true }

[target.'cfg(unix)'.dependencies]
helper = { version = "0.1", registry = "wharf" }

[build-dependencies]
base = { version = "1.0", registry = "wharf" }

[features]
fancy = ["dep:opt"]
`,
      files: {
        'build.rs': 'fn main() { let _ = base::base(); }\n',
        'src/lib.rs':
          'pub fn hello() -> String { format!("{} {} {}", base::base(), renamed_util::u(), helper::help()) }\n#[cfg(feature = "fancy")]\npub fn fancy() -> u8 { opt::o() }\n',
      },
    });
    // Verified: cargo builds app-lib from this registry's crates before uploading it.
    const result = await publish(appLib, home, alice, []);
    expect(result.code, result.stderr).toBe(0);
    const [line] = await indexLines('app-lib');
    expect(line).toMatchObject({
      name: 'app-lib',
      vers: '0.2.0',
      rust_version: '1.60',
      v: 2,
      features2: { fancy: ['dep:opt'] },
    });
    const deps = Object.fromEntries(
      line.deps.map((d: { name: string; kind: string }) => [`${d.kind}:${d.name}`, d]),
    );
    expect(deps['normal:base']).toMatchObject({
      req: '^1',
      default_features: false,
      features: ['extra'],
      optional: false,
    });
    expect(deps['normal:base'].registry).toBeUndefined();
    expect(deps['normal:renamed_util']).toMatchObject({ package: 'util', req: '^0.3' });
    expect(deps['normal:opt']).toMatchObject({ optional: true });
    expect(deps['normal:opt'].package).toBeUndefined();
    expect(deps['normal:helper']).toMatchObject({ target: 'cfg(unix)' });
    expect(deps['build:base']).toMatchObject({ req: '^1.0', kind: 'build' });
  });

  it('builds a dependent crate from a fresh CARGO_HOME', { timeout: TIMEOUT }, async () => {
    const home = await homeFor();
    const consumer = await writeCrate(work, {
      name: 'consumer',
      version: '0.0.1',
      manifest: '\n[dependencies]\napp-lib = { version = "0.2", registry = "wharf", features = ["fancy"] }\n',
      files: { 'src/main.rs': 'fn main() { println!("{} {}", app_lib::hello(), app_lib::fancy()); }\n' },
    });
    const result = await run(['run', '--quiet'], consumer, home);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('1.0.1 3 7 9');
  });

  it('cargo yank hides a version from new lockfiles but an existing Cargo.lock still builds; --undo restores it', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await homeFor();
    const manifest = '\n[dependencies]\nbase = { version = "1", registry = "wharf" }\n';
    const locked = await writeCrate(work, {
      name: 'locked',
      version: '0.0.1',
      manifest,
      files: { 'src/main.rs': 'fn main() { print!("{}", base::base()); }\n' },
    });
    expect((await run(['generate-lockfile'], locked, home)).code).toBe(0);
    expect(await readFile(path.join(locked, 'Cargo.lock'), 'utf8')).toMatch(
      /name = "base"\nversion = "1\.0\.1"/,
    );

    const yank = await run(['yank', '--registry', 'wharf', 'base@1.0.1'], work, home, {
      CARGO_REGISTRIES_WHARF_TOKEN: alice,
    });
    expect(yank.code, yank.stderr).toBe(0);
    expect(yank.stderr).toMatch(/Yank base@1\.0\.1/);
    const fresh = await writeCrate(work, { name: 'fresh', version: '0.0.1', manifest });
    expect((await run(['generate-lockfile'], fresh, home)).code).toBe(0);
    expect(await readFile(path.join(fresh, 'Cargo.lock'), 'utf8')).toMatch(
      /name = "base"\nversion = "1\.0\.0"/,
    );
    const built = await run(['run', '--quiet', '--locked'], locked, home);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toBe('1.0.1');

    const undo = await run(['yank', '--undo', '--registry', 'wharf', 'base@1.0.1'], work, home, {
      CARGO_REGISTRIES_WHARF_TOKEN: alice,
    });
    expect(undo.code, undo.stderr).toBe(0);
    expect((await run(['update'], fresh, home)).code).toBe(0);
    expect(await readFile(path.join(fresh, 'Cargo.lock'), 'utf8')).toMatch(
      /name = "base"\nversion = "1\.0\.1"/,
    );
  });

  it('cargo owner --add/--list/--remove, with users and groups', { timeout: TIMEOUT }, async () => {
    const home = await homeFor();
    const owner = (args: string[], token = alice) =>
      run(['owner', '--registry', 'wharf', ...args, 'helper'], work, home, {
        CARGO_REGISTRIES_WHARF_TOKEN: token,
      });
    const add = await owner(['--add', 'bob', '--add', 'group:devs']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toMatch(/`bob`, `group:devs` added as owner\(s\) of crate helper/);
    const list = await owner(['--list'], bob);
    expect(
      list.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ')[0]),
    ).toEqual(['alice', 'bob', 'group:devs']);
    const remove = await owner(['--remove', 'bob'], bob);
    expect(remove.code, remove.stderr).toBe(0);
    const notOwner = await owner(['--add', 'bob'], bob);
    expect(notOwner.code).not.toBe(0);
    expect(notOwner.stderr).toMatch(/you are not an owner of crate `helper`/);
    const unknown = await owner(['--add', 'nobody']);
    expect(unknown.stderr).toMatch(/could not find a user named `nobody`/);
  });

  it('cargo search', { timeout: TIMEOUT }, async () => {
    const home = await homeFor();
    const result = await run(['search', '--registry', 'wharf', 'base'], work, home);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^base = "1\.0\.1"\s+# the base crate/m);
  });

  it('bad publishes show the registry message and leave no trace', { timeout: TIMEOUT }, async () => {
    const home = await homeFor();
    const cases: [string, () => Promise<string>, string, RegExp][] = [
      [
        'name differing only in case',
        () => writeCrate(work, { name: 'Base', version: '9.0.0' }),
        alice,
        /crate `base` already exists and names may not differ only in case/,
      ],
      [
        // cargo 1.95 itself refuses this before uploading (from the index we serve); the server's own
        // check of the same rule is covered in api.test.ts.
        'same version with other build metadata',
        () => base('1.0.0+other'),
        alice,
        /crate base@1\.0\.0\+other already exists on `wharf` index/,
      ],
      [
        'oversize',
        () =>
          writeCrate(work, {
            name: 'bulky',
            version: '1.0.0',
            files: { 'data.txt': randomBytes(300 * 1024).toString('base64') },
          }),
        alice,
        /larger than this registry's limit of 0\.3 MiB/,
      ],
      [
        'token without publish-new',
        () => writeCrate(work, { name: 'scoped', version: '1.0.0' }),
        await a.accounts.token('alice', ['publish-update', 'yank']),
        /lacks the `publish-new` scope/,
      ],
      ['not an owner', () => base('2.0.0'), bob, /you are not an owner of crate `base`/],
    ];
    for (const [title, make, token, message] of cases) {
      const dir = await make();
      const before = await allKeys(a.store);
      const result = await publish(dir, home, token);
      expect(result.code, title).not.toBe(0);
      expect(result.stderr, title).toMatch(message);
      expect(await allKeys(a.store), title).toEqual(before);
    }
  });
});

describe('private registry', () => {
  it('refuses cargo without a token, pointing at /me; works with one', { timeout: TIMEOUT }, async () => {
    const priv = await startRegistry({ cargo: { authRequired: true } });
    try {
      const token = await priv.accounts.addUser('carol');
      const home = await cargoHome(`[registries.private]\nindex = "sparse+${priv.url}/index/"\n`);
      const secret = await writeCrate(work, { name: 'secret', version: '0.1.0' });
      const env = { CARGO_REGISTRIES_PRIVATE_TOKEN: token };
      const pub = await cargo(['publish', '--no-verify', '--registry', 'private'], {
        cwd: secret,
        home,
        targetDir,
        env,
      });
      expect(pub.code, pub.stderr).toBe(0);
      const user = await writeCrate(work, {
        name: 'secret-user',
        version: '0.1.0',
        manifest: '\n[dependencies]\nsecret = { version = "0.1", registry = "private" }\n',
      });
      const anonymous = await cargo(['generate-lockfile'], { cwd: user, home, targetDir });
      expect(anonymous.code).not.toBe(0);
      expect(anonymous.stderr).toMatch(/no token found for `private`/);
      const withToken = await cargo(['fetch'], { cwd: user, home, targetDir, env });
      expect(withToken.code, withToken.stderr).toBe(0);
      const wrong = await cargo(['generate-lockfile'], {
        cwd: user,
        home: await cargoHome(`[registries.private]\nindex = "sparse+${priv.url}/index/"\n`),
        targetDir,
        env: { CARGO_REGISTRIES_PRIVATE_TOKEN: 'wrong' },
      });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/token is invalid/);
    } finally {
      await priv.close();
    }
  });
});

describe('crates.io source replacement through the mirror', () => {
  it('builds a crate depending on "crates.io" crates served by a second wharf mirroring the first', {
    timeout: TIMEOUT,
  }, async () => {
    const b = await startRegistry({
      cargo: { mirror: { enabled: true, upstreamIndex: `${a.url}/index/`, indexTtlSeconds: 0 } },
    });
    try {
      const home = await cargoHome(
        `[source.crates-io]\nreplace-with = "wharf-mirror"\n\n[source.wharf-mirror]\nregistry = "sparse+${b.url}/mirror/index/"\n`,
      );
      const user = await writeCrate(work, {
        name: 'mirror-user',
        version: '0.1.0',
        manifest: '\n[dependencies]\nbase = "1"\n',
        files: { 'src/main.rs': 'fn main() { print!("{}", base::base()); }\n' },
      });
      const result = await cargo(['run', '--quiet'], { cwd: user, home, targetDir });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe('1.0.1');
      expect(await allKeys(b.store, 'cargo/mirror/crates/')).toEqual([
        expect.stringMatching(/^cargo\/mirror\/crates\/base\/1\.0\.1\/[0-9a-f]{64}\.crate$/),
      ]);
      // Yanked state follows upstream: yank on A, a new lockfile through B avoids 1.0.1.
      const yank = await cargo(['yank', '--registry', 'wharf', 'base@1.0.1'], {
        cwd: work,
        home: await homeFor(),
        targetDir,
        env: { CARGO_REGISTRIES_WHARF_TOKEN: alice },
      });
      expect(yank.code, yank.stderr).toBe(0);
      await writeFile(path.join(user, 'Cargo.lock'), '');
      await rm(path.join(user, 'Cargo.lock'));
      expect((await cargo(['generate-lockfile'], { cwd: user, home, targetDir })).code).toBe(0);
      expect(await readFile(path.join(user, 'Cargo.lock'), 'utf8')).toMatch(
        /name = "base"\nversion = "1\.0\.0"/,
      );
    } finally {
      await b.close();
    }
  });
});
