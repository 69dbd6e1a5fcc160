import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readJson } from '../../server/store/json-doc.ts';
import { cargo, cargoHome, registryToml, writeCrate } from './cargo-cli.ts';
import { metadata, publishBody, simpleCrate } from './crate-file.ts';
import { startRegistry, type TestRegistry } from './support.ts';

/**
 * crates.io's metadata API over a real socket, for crates published by the real `cargo publish`:
 * what Cargo.toml says comes back in crates.io's JSON shapes, the README is rendered and
 * sanitized, and downloads made by `cargo fetch` are counted.
 */
const TIMEOUT = 300_000;
let registry: TestRegistry;
let work: string;
let targetDir: string;
let alice: string;

const README = `# Shiny

A **shiny** parser.

<script>alert('readme')</script>

[click me](javascript:alert(1)) and <a href="JaVaScRiPt:alert(2)">me</a>

<img src="logo.png" onerror="alert(3)" alt="logo">

<div onclick="alert(4)" style="position:fixed">styled</div>

| feature | default |
|---------|---------|
| std     | yes     |

\`\`\`rust
let x = shiny::parse("1");
\`\`\`
`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'wharf-cargo-meta-'));
  targetDir = path.join(work, 'target');
  registry = await startRegistry({ cargo: { downloadsFlushSeconds: 1 } });
  await registry.accounts.addUser('alice');
  alice = await registry.accounts.token('alice');
  const home = await cargoHome(registryToml('wharf', registry.url));
  const publish = async (dir: string) => {
    const result = await cargo(['publish', '--registry', 'wharf', '--no-verify'], {
      cwd: dir,
      home,
      targetDir,
      env: { CARGO_REGISTRIES_WHARF_TOKEN: alice },
    });
    expect(result.code, result.stderr).toBe(0);
  };
  const shiny = (version: string) =>
    writeCrate(work, {
      name: 'shiny',
      version,
      manifest: [
        'readme = "README.md"',
        'keywords = ["parsing", "demo-kw"]',
        'categories = ["parser-implementations"]',
        'repository = "https://git.example/shiny"',
        'homepage = "https://shiny.example"',
        'documentation = "https://docs.example/shiny"',
        'authors = ["Alice <alice@example.com>"]',
        'rust-version = "1.70"',
        'links = "shinylib"',
        'build = "build.rs"',
        '',
        '[features]',
        'default = ["std"]',
        'std = []',
        '',
      ].join('\n'),
      files: { 'README.md': README, 'build.rs': 'fn main() {}\n', 'src/lib.rs': 'pub fn parse() {}\n' },
    });
  await publish(await shiny('1.0.0'));
  await publish(await shiny('1.1.0'));
  await publish(
    await writeCrate(work, {
      name: 'shiny-user',
      version: '0.1.0',
      manifest: '\n[dependencies]\nshiny = { version = "1", registry = "wharf", optional = true }\n',
    }),
  );
}, TIMEOUT);
afterAll(async () => {
  await registry?.close();
  await rm(work, { recursive: true, force: true });
});

const get = async (url: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${registry.url}${url}`, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
};
const getJson = async (url: string) => {
  const res = await get(url);
  expect(res.status, res.text).toBe(200);
  return JSON.parse(res.text);
};

describe('crates.io metadata API', () => {
  it('GET /api/v1/crates/{name}: crate, versions, keywords, categories from Cargo.toml', async () => {
    const body = await getJson('/api/v1/crates/shiny');
    expect(body.crate).toMatchObject({
      id: 'shiny',
      name: 'shiny',
      description: 'the shiny crate',
      homepage: 'https://shiny.example',
      documentation: 'https://docs.example/shiny',
      repository: 'https://git.example/shiny',
      max_version: '1.1.0',
      max_stable_version: '1.1.0',
      newest_version: '1.1.0',
      default_version: '1.1.0',
      num_versions: 2,
      yanked: false,
      keywords: ['parsing', 'demo-kw'],
      categories: ['parser-implementations'],
      badges: [],
      exact_match: false,
      links: {
        versions: '/api/v1/crates/shiny/versions',
        reverse_dependencies: '/api/v1/crates/shiny/reverse_dependencies',
        version_downloads: '/api/v1/crates/shiny/downloads',
        owner_user: '/api/v1/crates/shiny/owner_user',
      },
    });
    expect(body.crate.versions).toHaveLength(2);
    expect(Date.parse(body.crate.created_at)).not.toBeNaN();
    expect(body.versions.map((v: { num: string }) => v.num)).toEqual(['1.1.0', '1.0.0']);
    expect(body.versions[0]).toMatchObject({
      id: body.crate.versions[0],
      crate: 'shiny',
      num: '1.1.0',
      dl_path: '/api/v1/crates/shiny/1.1.0/download',
      readme_path: '/api/v1/crates/shiny/1.1.0/readme',
      license: 'MIT',
      rust_version: '1.70',
      edition: '2021',
      lib_links: 'shinylib',
      features: { default: ['std'], std: [] },
      yanked: false,
      published_by: { login: 'alice' },
      description: 'the shiny crate',
      repository: 'https://git.example/shiny',
    });
    expect(body.versions[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(body.versions[0].crate_size).toBeGreaterThan(100);
    expect(body.keywords).toEqual([
      expect.objectContaining({ id: 'parsing', keyword: 'parsing', crates_cnt: 1 }),
      expect.objectContaining({ id: 'demo-kw', keyword: 'demo-kw', crates_cnt: 1 }),
    ]);
    expect(body.categories).toEqual([
      expect.objectContaining({ slug: 'parser-implementations', crates_cnt: 1 }),
    ]);
    // Names are matched as cargo matches them: case and -/_ do not matter.
    expect((await getJson('/api/v1/crates/Shiny_User')).crate.name).toBe('shiny-user');
  });

  it('?include= limits the response as on crates.io', async () => {
    const body = await getJson('/api/v1/crates/shiny?include=default_version');
    expect(body.crate.versions).toBeNull();
    expect(body.keywords).toBeNull();
    expect(body.versions.map((v: { num: string }) => v.num)).toEqual(['1.1.0']);
  });

  it('GET /{version}, /versions with paging, /{version}/dependencies and /authors', async () => {
    expect((await getJson('/api/v1/crates/shiny/1.0.0')).version).toMatchObject({ num: '1.0.0' });
    const all = await getJson('/api/v1/crates/shiny/versions');
    expect(all.meta).toEqual({ total: 2, next_page: null });
    const paged = await getJson('/api/v1/crates/shiny/versions?per_page=1');
    expect(paged.versions.map((v: { num: string }) => v.num)).toEqual(['1.1.0']);
    expect(paged.meta).toEqual({ total: 2, next_page: '?per_page=1&page=2' });
    const second = await getJson(`/api/v1/crates/shiny/versions${paged.meta.next_page}`);
    expect(second.versions.map((v: { num: string }) => v.num)).toEqual(['1.0.0']);
    const deps = await getJson('/api/v1/crates/shiny-user/0.1.0/dependencies');
    expect(deps.dependencies).toEqual([
      expect.objectContaining({
        crate_id: 'shiny',
        req: '^1',
        optional: true,
        default_features: true,
        kind: 'normal',
        target: null,
        features: [],
      }),
    ]);
    expect((await getJson('/api/v1/crates/shiny/1.1.0/authors')).meta.names).toEqual([
      'Alice <alice@example.com>',
    ]);
  });

  it('README: rendered HTML with scripts, handlers, javascript: links and styles removed', async () => {
    const res = await get('/api/v1/crates/shiny/1.1.0/readme');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain('sandbox');
    const html = res.text;
    expect(html).toContain('<h1>Shiny</h1>');
    expect(html).toContain('<strong>shiny</strong>');
    expect(html).toContain('<table>');
    expect(html).toContain('<code class="language-rust">');
    expect(html).toContain('alt="logo"');
    expect(html).not.toMatch(/<script|onerror|onclick|style=|<iframe/i);
    // markdown-it leaves a javascript: link as text; the sanitizer drops an HTML one's href.
    expect(html).not.toMatch(/href="[^"]*javascript/i);
    expect(html).toContain('<a rel="nofollow noopener noreferrer">me</a>');
    // crates.io's JSON form names where the HTML is.
    const pointer = await get('/api/v1/crates/shiny/1.1.0/readme', { accept: 'application/json' });
    const { url } = JSON.parse(pointer.text);
    expect(url).toBe(`${registry.url}/api/v1/crates/shiny/1.1.0/readme.html`);
    expect(await fetch(url, { headers: { accept: 'application/json' } }).then((r) => r.text())).toBe(html);
    const none = await get('/api/v1/crates/shiny-user/0.1.0/readme');
    expect(none.status).toBe(404);
    expect(JSON.parse(none.text).errors[0].detail).toMatch(/has no README/);
  });

  it('search finds names, keywords and description words; exact name first; cargo search agrees', async () => {
    const byName = await getJson('/api/v1/crates?q=shiny');
    expect(byName.crates.map((c: { name: string }) => c.name)).toEqual(['shiny', 'shiny-user']);
    expect(byName.crates[0].exact_match).toBe(true);
    expect(byName.meta.total).toBe(2);
    expect((await getJson('/api/v1/crates?q=demo-kw')).crates.map((c: { name: string }) => c.name)).toEqual([
      'shiny',
    ]);
    expect(
      (await getJson('/api/v1/crates?q=the%20user%20crate')).crates.map((c: { name: string }) => c.name),
    ).toEqual(['shiny-user']);
    expect((await getJson('/api/v1/crates?q=nothing-like-this')).meta.total).toBe(0);
    const home = await cargoHome(registryToml('wharf', registry.url));
    const result = await cargo(['search', '--registry', 'wharf', 'shiny'], { cwd: work, home, targetDir });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^shiny = "1\.1\.0"\s+# the shiny crate/m);
  });

  it('reverse dependencies and owners', async () => {
    const body = await getJson('/api/v1/crates/shiny/reverse_dependencies');
    expect(body.meta).toEqual({ total: 1 });
    expect(body.dependencies).toEqual([expect.objectContaining({ crate_id: 'shiny', req: '^1' })]);
    expect(body.versions).toEqual([expect.objectContaining({ crate: 'shiny-user', num: '0.1.0' })]);
    expect(body.dependencies[0].version_id).toBe(body.versions[0].id);
    expect((await getJson('/api/v1/crates/shiny-user/reverse_dependencies')).meta.total).toBe(0);
    expect((await getJson('/api/v1/crates/shiny/owner_user')).users).toEqual([
      expect.objectContaining({ login: 'alice', kind: 'user' }),
    ]);
    expect((await getJson('/api/v1/crates/shiny/owner_team')).teams).toEqual([]);
  });

  it('counts the downloads cargo makes, per version per day, and stores them in batches', {
    timeout: TIMEOUT,
  }, async () => {
    const home = await cargoHome(registryToml('wharf', registry.url));
    const consumer = await writeCrate(work, {
      name: 'consumer',
      version: '0.1.0',
      manifest: '\n[dependencies]\nshiny = { version = "=1.0.0", registry = "wharf" }\n',
    });
    const fetched = await cargo(['fetch'], { cwd: consumer, home, targetDir });
    expect(fetched.code, fetched.stderr).toBe(0);
    for (let i = 0; i < 3; i++)
      expect((await fetch(`${registry.url}/api/v1/crates/shiny/1.1.0/download`)).status).toBe(200);
    const today = new Date().toISOString().slice(0, 10);
    const crate = await getJson('/api/v1/crates/shiny');
    const ids = Object.fromEntries(crate.versions.map((v: { num: string; id: number }) => [v.num, v.id]));
    expect(crate.crate.downloads).toBe(4);
    expect(crate.crate.recent_downloads).toBe(4);
    expect(crate.versions.map((v: { downloads: number }) => v.downloads)).toEqual([3, 1]);
    const downloads = await getJson('/api/v1/crates/shiny/downloads');
    expect(downloads.version_downloads).toEqual(
      expect.arrayContaining([
        { version: ids['1.1.0'], downloads: 3, date: today },
        { version: ids['1.0.0'], downloads: 1, date: today },
      ]),
    );
    expect(downloads.meta).toEqual({ extra_downloads: [] });
    expect((await getJson('/api/v1/crates/shiny/1.0.0/downloads')).version_downloads).toEqual([
      { version: ids['1.0.0'], downloads: 1, date: today },
    ]);
    // Written to the store by the background flush (every second here), not by the downloads.
    const deadline = Date.now() + 10_000;
    let stored = null;
    while (Date.now() < deadline) {
      stored = (
        await readJson<{ versions: Record<string, number> }>(registry.store, 'cargo/downloads/shiny.json')
      )?.value;
      if (stored?.versions['1.1.0'] === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(stored?.versions).toEqual({ '1.0.0': 1, '1.1.0': 3 });
  });

  it('errors in cargo format; bounded parameters', async () => {
    const missing = await get('/api/v1/crates/no-such-crate');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toEqual({
      errors: [{ detail: 'crate `no-such-crate` does not exist in this registry' }],
    });
    const noVersion = await get('/api/v1/crates/shiny/9.9.9');
    expect(noVersion.status).toBe(404);
    expect(JSON.parse(noVersion.text).errors[0].detail).toMatch(/does not have a version `9\.9\.9`/);
    for (const url of [
      '/api/v1/crates/shiny/not-a-version',
      '/api/v1/crates/%3Cscript%3E',
      '/api/v1/crates/shiny/versions?per_page=101',
      '/api/v1/crates/shiny/versions?sort=random',
      '/api/v1/crates/shiny/reverse_dependencies?page=0',
      `/api/v1/crates?q=${'x'.repeat(201)}`,
    ]) {
      const res = await get(url);
      expect(res.status, url).toBe(400);
      expect(JSON.parse(res.text).errors[0].detail, url).toEqual(expect.any(String));
    }
  });
});

describe('crates published before the metadata API', () => {
  it('answer with null and empty fields', async () => {
    const old = await startRegistry({ listen: false });
    try {
      const token = await old.accounts.addUser('carol');
      const published = await old.app.inject({
        method: 'PUT',
        url: '/api/v1/crates/new',
        headers: { authorization: token },
        payload: publishBody(metadata('legacy', '0.1.0'), await simpleCrate('legacy', '0.1.0')),
      });
      expect(published.statusCode, published.body).toBe(200);
      // What the store held before this change: no per-version details, no crate-level links.
      const key = 'cargo/meta/legacy.json';
      const doc = (await readJson<Record<string, unknown>>(old.store, key))?.value ?? {};
      const {
        versions: _v,
        keywords: _k,
        categories: _c,
        homepage: _h,
        documentation: _d,
        repository: _r,
        ...before
      } = doc;
      await old.store.put(key, JSON.stringify(before));
      const body = (await old.app.inject({ url: '/api/v1/crates/legacy' })).json();
      expect(body.crate).toMatchObject({
        name: 'legacy',
        homepage: null,
        repository: null,
        keywords: [],
        downloads: 0,
      });
      expect(body.versions[0]).toMatchObject({
        num: '0.1.0',
        license: null,
        edition: null,
        published_by: null,
        crate_size: 0,
      });
      expect((await old.app.inject({ url: '/api/v1/crates/legacy/0.1.0/readme' })).statusCode).toBe(404);
      expect((await old.app.inject({ url: '/api/v1/crates?q=legacy' })).json().meta.total).toBe(1);
    } finally {
      await old.close();
    }
  });
});

describe('private registry', () => {
  it('the metadata API needs a token like the index does', async () => {
    const priv = await startRegistry({ cargo: { authRequired: true }, listen: false });
    try {
      const token = await priv.accounts.addUser('dave');
      const published = await priv.app.inject({
        method: 'PUT',
        url: '/api/v1/crates/new',
        headers: { authorization: token },
        payload: publishBody(
          metadata('secret', '0.1.0', { readme: '# secret' }),
          await simpleCrate('secret', '0.1.0'),
        ),
      });
      expect(published.statusCode, published.body).toBe(200);
      for (const url of [
        '/api/v1/crates/secret',
        '/api/v1/crates/secret/versions',
        '/api/v1/crates/secret/0.1.0',
        '/api/v1/crates/secret/0.1.0/readme',
        '/api/v1/crates/secret/0.1.0/dependencies',
        '/api/v1/crates/secret/downloads',
        '/api/v1/crates/secret/reverse_dependencies',
        '/api/v1/crates/secret/owner_user',
        '/api/v1/crates?q=secret',
      ]) {
        const anonymous = await priv.app.inject({ url });
        expect(anonymous.statusCode, url).toBe(401);
        expect(anonymous.json().errors[0].detail, url).toMatch(/this registry is private/);
        const bad = await priv.app.inject({ url, headers: { authorization: 'not-a-token' } });
        expect(bad.statusCode, url).toBe(403);
        expect((await priv.app.inject({ url, headers: { authorization: token } })).statusCode, url).toBe(200);
      }
    } finally {
      await priv.close();
    }
  });
});
