import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CrateEntry, gzipBomb, makeCrate, makeTar, metadata, publishBody } from './crate-file.ts';
import { allKeys, startRegistry, type TestRegistry } from './support.ts';

const MAX_UNPACKED = 4 * 1024 * 1024;

let registry: TestRegistry;
let token: string;

beforeAll(async () => {
  registry = await startRegistry({ cargo: { maxUnpackedBytes: MAX_UNPACKED } });
  await registry.accounts.addUser('alice');
  token = await registry.accounts.token('alice');
});
afterAll(() => registry?.close());

async function publish(name: string, crate: Buffer) {
  const response = await fetch(`${registry.url}/api/v1/crates/new`, {
    method: 'PUT',
    headers: { authorization: token },
    body: publishBody(metadata(name, '1.0.0'), crate),
  });
  const body = (await response.json()) as { errors?: { detail: string }[] };
  return { status: response.status, detail: body.errors?.[0]?.detail };
}

async function inflatedSoFar(): Promise<number> {
  const text = await (await fetch(`${registry.metricsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('wharf_cargo_unpacked_bytes_total '));
  return Number(line?.split(' ')[1] ?? 0);
}

const manifest = (name: string): CrateEntry => ({
  name: `${name}-1.0.0/Cargo.toml`,
  body: `[package]\nname = "${name}"\nversion = "1.0.0"\n`,
});

describe('the unpacked size of a .crate', () => {
  it('refuses a gzip bomb of zero padding (1 GiB in a 1 MiB .crate) and stops inflating at the bound', async () => {
    const archive = await makeTar([manifest('bomb'), { name: 'bomb-1.0.0/src/lib.rs', body: '' }]);
    const bomb = await gzipBomb(archive, 1024);
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const before = await inflatedSoFar();
    const keysBefore = await allKeys(registry.store);

    const refused = await publish('bomb', bomb);
    expect(refused.status).toBe(413);
    expect(refused.detail).toBe(
      `invalid .crate: it unpacks to more than this registry's limit of ${MAX_UNPACKED} bytes`,
    );
    // Inflating stopped just past the bound (one zlib chunk at most), not at the 1 GiB the bomb holds.
    const inflated = (await inflatedSoFar()) - before;
    expect(inflated).toBeGreaterThan(MAX_UNPACKED);
    expect(inflated).toBeLessThan(MAX_UNPACKED + 256 * 1024);
    expect(await allKeys(registry.store)).toEqual(keysBefore);
  });

  it('accepts a .crate that unpacks to just under the bound, counting its tar headers and padding', async () => {
    // Incompressible data, so the .crate is as big as what it unpacks to.
    const data = randomBytes(MAX_UNPACKED - 64 * 1024);
    const crate = await makeCrate([manifest('roomy'), { name: 'roomy-1.0.0/data.bin', body: data }]);
    const before = await inflatedSoFar();
    const published = await publish('roomy', crate);
    expect(published).toEqual({ status: 200, detail: undefined });
    const inflated = (await inflatedSoFar()) - before;
    expect(inflated).toBe(
      (await makeTar([manifest('roomy'), { name: 'roomy-1.0.0/data.bin', body: data }])).length,
    );
  });
});

describe("tar entries, by cargo's unpacking rules", () => {
  const cases: [string, CrateEntry[], RegExp][] = [
    [
      'a symbolic link pointing outside the package',
      [{ name: 'evil-1.0.0/escape', type: 'symlink', linkname: '../../.ssh/authorized_keys' }],
      /"evil-1\.0\.0\/escape" is a symbolic link to "\.\.\/\.\.\/\.ssh\/authorized_keys"/,
    ],
    [
      'a symbolic link that replaces the package folder',
      [{ name: 'evil-1.0.0', type: 'symlink', linkname: 'other-1.0.0' }],
      /"evil-1\.0\.0" is a symbolic link/,
    ],
    [
      'a symbolic link with a Windows (backslash) target',
      [{ name: 'evil-1.0.0/win', type: 'symlink', linkname: '..\\..\\Windows\\System32' }],
      /"evil-1\.0\.0\/win" is a symbolic link to "\.\.\\\.\.\\Windows\\System32"/,
    ],
    [
      'a symbolic link that stays inside the package (cargo refuses every link)',
      [{ name: 'evil-1.0.0/src/alias.rs', type: 'symlink', linkname: 'lib.rs' }],
      /is a symbolic link to "lib\.rs": cargo unpacks only files and directories/,
    ],
    [
      'a hard link to a file outside the package',
      [{ name: 'evil-1.0.0/passwd', type: 'link', linkname: '/etc/passwd' }],
      /"evil-1\.0\.0\/passwd" is a hard link to "\/etc\/passwd"/,
    ],
    [
      'a hard link inside the package',
      [{ name: 'evil-1.0.0/src/copy.rs', type: 'link', linkname: 'evil-1.0.0/src/lib.rs' }],
      /is a hard link/,
    ],
    [
      'a file that replaces the package folder',
      [{ name: 'evil-1.0.0', body: 'not a folder' }],
      /"evil-1\.0\.0" replaces the package folder with a file/,
    ],
    [
      'a character device',
      [{ name: 'evil-1.0.0/tty', type: 'character-device' }],
      /unsupported type \(character-device\)/,
    ],
    ['a fifo', [{ name: 'evil-1.0.0/pipe', type: 'fifo' }], /unsupported type \(fifo\)/],
    [
      'a contiguous file',
      [{ name: 'evil-1.0.0/data', type: 'contiguous-file', body: 'x' }],
      /unsupported type \(contiguous-file\)/,
    ],
    [
      'a path with a backslash',
      [{ name: 'evil-1.0.0\\..\\..\\x', body: 'x' }],
      /has an absolute or Windows path/,
    ],
  ];
  for (const [title, entries, message] of cases) {
    it(`refuses ${title}, storing nothing`, async () => {
      const crate = await makeCrate([
        manifest('evil'),
        { name: 'evil-1.0.0/src/lib.rs', body: '' },
        ...entries,
      ]);
      const keysBefore = await allKeys(registry.store);
      const refused = await publish('evil', crate);
      expect(refused.status).toBe(400);
      expect(refused.detail).toMatch(message);
      expect(await allKeys(registry.store)).toEqual(keysBefore);
    });
  }

  it('accepts directory entries, the package folder included (what cargo package writes)', async () => {
    const crate = await makeCrate([
      { name: 'folders-1.0.0/', type: 'directory' },
      manifest('folders'),
      { name: 'folders-1.0.0/src/', type: 'directory' },
      { name: 'folders-1.0.0/src/lib.rs', body: 'pub fn f() {}' },
    ]);
    expect(await publish('folders', crate)).toEqual({ status: 200, detail: undefined });
  });
});
