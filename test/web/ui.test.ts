import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCI_DEFAULTS } from '../../server/registry/oci/settings.ts';
import { cargo, cargoHome, registryToml, writeCrate } from '../cargo/cargo-cli.ts';
import { metadata, publishBody, simpleCrate } from '../cargo/crate-file.ts';
import { writeOciLayout } from '../oci/layout.ts';
import { launchChromium } from '../openid/chromium.ts';
import { ADMIN_PASSWORD, type Harness, startHarness } from '../openid/harness.ts';
import { toolPath } from '../support/tools.ts';
import { ensureUiBuilt } from './built-ui.ts';

const exec = promisify(execFile);
const SCREENSHOTS = new URL('../../test-results/ui/', import.meta.url);
const AXE_SOURCE = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const README = `# Frob tools

Frobnicating harbours since 2026. Run \`frob --all\` to begin.

<script>document.title = 'pwned'</script>
`;

interface AxeResult {
  violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
}

/**
 * The web UI in headless Chromium against a real server (AuthService + registry, the real OpenID
 * provider, content pushed by cargo, skopeo and oras): every page, its screenshot under
 * test-results/ui/ and an axe-core scan with no serious or critical violation.
 */
describe('web UI in Chromium', () => {
  let wharf: Harness;
  let browser: Browser;
  let work: string;
  let host: string;
  let admin: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];
  let adminToken: string;

  beforeAll(async () => {
    ensureUiBuilt();
    await mkdir(SCREENSHOTS, { recursive: true });
    work = await mkdtemp(path.join(tmpdir(), 'wharf-ui-'));
    [wharf, browser] = await Promise.all([
      startHarness({
        settings: {
          roles: ['auth', 'registry'],
          // Downloads are counted in memory and written every second: the chart shows cargo's fetch.
          registry: { credentialCacheSeconds: 0, cargo: { downloadsFlushSeconds: 1 } },
        },
      }),
      launchChromium(),
    ]);
    host = new URL(wharf.baseUrl).host;
    const issued = await fetch(`${wharf.baseUrl}/auth/api/v1/tokens`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'setup' }),
    });
    adminToken = ((await issued.json()) as { token: string }).token;
    admin = await newContext();
    page = await admin.newPage();
  }, 600_000);
  afterAll(async () => {
    await browser?.close();
    await wharf?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function newContext(options: { width?: number } = {}): Promise<BrowserContext> {
    const context = await browser.newContext({
      viewport: { width: options.width ?? 1280, height: 900 },
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    context.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    return context;
  }

  /** Saves the page and scans it with axe-core (injected through the debugger: the CSP allows no inline script). */
  async function check(on: Page, name: string): Promise<void> {
    await on.waitForLoadState('networkidle');
    await on.screenshot({ path: new URL(`${name}.png`, SCREENSHOTS).pathname, fullPage: true });
    await on.evaluate(AXE_SOURCE);
    const result = (await on.evaluate('axe.run()')) as AxeResult;
    const serious = result.violations
      .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    expect(serious, `axe on ${name}`).toEqual([]);
  }

  const tool = async (name: string, args: string[], env: Record<string, string> = {}) =>
    exec(await toolPath(name), args, {
      env: { ...process.env, HOME: work, ...env },
      cwd: work,
      timeout: 120_000,
    });

  async function skopeo(user: string, password: string, ...args: string[]) {
    const auth = path.join(work, `${user}-auth.json`);
    await tool('skopeo', [
      'login',
      '--tls-verify=false',
      `--authfile=${auth}`,
      '-u',
      user,
      '-p',
      password,
      host,
    ]);
    return tool('skopeo', [
      `--policy=${path.join(work, 'policy.json')}`,
      'copy',
      `--authfile=${auth}`,
      '--dest-tls-verify=false',
      ...args,
    ]);
  }

  async function publish(home: string, version: string, token?: string) {
    const dir = await writeCrate(work, {
      name: 'frob-tools',
      version,
      manifest: 'readme = "README.md"\nkeywords = ["harbour"]\n',
      files: { 'README.md': README },
    });
    // The description is what the search finds.
    const manifest = path.join(dir, 'Cargo.toml');
    await writeFile(
      manifest,
      (await readFile(manifest, 'utf8')).replace(
        'description = "the frob-tools crate"',
        'description = "A frobnicator for busy harbours"',
      ),
    );
    return cargo(['publish', '--registry', 'wharf', '--no-verify', '--allow-dirty'], {
      cwd: dir,
      home,
      targetDir: path.join(work, 'target'),
      ...(token ? { env: { CARGO_REGISTRIES_WHARF_TOKEN: token } } : {}),
    });
  }

  async function signInWithPassword(on: Page, user: string, password: string) {
    await on.goto(`${wharf.baseUrl}/ui/signin`);
    await on.getByLabel('User name').fill(user);
    await on.getByLabel('Password').fill(password);
    await on.locator('form.stack button[type="submit"]').click();
    await on.getByRole('button', { name: `Sign out ${user}` }).waitFor();
  }

  it('shows a newcomer how to start, then signs in with a password', { timeout: 120_000 }, async () => {
    await page.goto(`${wharf.baseUrl}/`);
    await page.getByRole('heading', { name: 'New here?' }).waitFor();
    expect(await page.textContent('main')).toContain(`sparse+${wharf.baseUrl}/index/`);
    await check(page, '01-home-anonymous');
    // Keyboard: the first Tab reaches the skip link, which moves focus to the page's content.
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate('document.activeElement.id')).toBe('main');
    await page.goto(`${wharf.baseUrl}/ui/signin`);
    await check(page, '02-signin');
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('wrong-password');
    await page.locator('form.stack button[type="submit"]').click();
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('Invalid username or password');
    await signInWithPassword(page, 'admin', ADMIN_PASSWORD);
    await check(page, '03-home-signed-in');
  });

  it('signs in through the OpenID provider and comes back to the page it left', {
    timeout: 120_000,
  }, async () => {
    const context = await newContext();
    const person = await context.newPage();
    await person.goto(`${wharf.baseUrl}/ui/signin?next=/ui/tokens`);
    await person.getByRole('link', { name: 'Sign in with corp' }).click();
    await person.waitForSelector('input[name="login"]');
    await person.fill('input[name="login"]', 'alice');
    await person.fill('input[name="password"]', 'any-password');
    await Promise.all([person.waitForURL(/\/interaction\//), person.click('button[type="submit"]')]);
    await person.waitForSelector('button[type="submit"]');
    await Promise.all([person.waitForURL(/\/ui\/tokens$/), person.click('button[type="submit"]')]);
    await person.getByRole('button', { name: /^Sign out .*alice/ }).waitFor();
    await person.getByRole('heading', { name: 'Your tokens' }).waitFor();
    await check(person, '04-tokens-openid-user');
    await context.close();
  });

  it('creates a token in the UI that cargo publishes with; revoked, cargo is refused', {
    timeout: 300_000,
  }, async () => {
    const home = await cargoHome(registryToml('wharf', wharf.baseUrl));
    // The first version, published with the administrator's token.
    const first = await publish(home, '0.1.0', adminToken);
    expect(first.code, first.stderr).toBe(0);

    await page.goto(`${wharf.baseUrl}/ui/tokens`);
    await page.getByLabel('Name', { exact: true }).fill('ui-publish');
    await page.getByLabel(/publish-update/).check();
    await page.getByLabel('Expires after').selectOption({ label: '30 days' });
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.getByRole('heading', { name: 'Token “ui-publish” created' }).waitFor();
    const token = (await page.locator('.created .copy-line code').first().textContent())?.trim() ?? '';
    expect(token).toMatch(/^wharf_/);
    await check(page, '05-tokens-created');

    const published = await publish(home, '0.2.0', token);
    expect(published.code, published.stderr).toBe(0);

    page.once('dialog', (dialog) => dialog.accept());
    await page.getByRole('button', { name: 'Revoke ui-publish' }).click();
    await page.getByText('Token ui-publish revoked.').waitFor();
    await check(page, '06-tokens-revoked');
    const refused = await publish(home, '0.3.0', token);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/403|401|invalid|token/i);
    // The first version yanked, for the crate page to show.
    const yank = await cargo(['yank', '--registry', 'wharf', 'frob-tools@0.1.0'], {
      cwd: work,
      home,
      targetDir: path.join(work, 'target'),
      env: { CARGO_REGISTRIES_WHARF_TOKEN: adminToken },
    });
    expect(yank.code, yank.stderr).toBe(0);
  });

  it('finds the crate by a word of its description, shows its README and copies the install line', {
    timeout: 180_000,
  }, async () => {
    // A project that depends on the crate: cargo fetch downloads it once, which the chart shows.
    const consumer = path.join(work, 'consumer');
    await mkdir(path.join(consumer, 'src'), { recursive: true });
    await writeFile(
      path.join(consumer, 'Cargo.toml'),
      '[package]\nname = "consumer"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nfrob-tools = { version = "0.2.0", registry = "wharf" }\n',
    );
    await writeFile(path.join(consumer, 'src', 'main.rs'), 'fn main() {}\n');
    const fetched = await cargo(['fetch'], {
      cwd: consumer,
      home: await cargoHome(registryToml('wharf', wharf.baseUrl)),
      targetDir: path.join(work, 'target'),
      env: { CARGO_REGISTRIES_WHARF_TOKEN: adminToken },
    });
    expect(fetched.code, fetched.stderr).toBe(0);
    const today = new Date().toISOString().slice(0, 10);
    await expect
      .poll(
        async () => {
          const answer = await fetch(`${wharf.baseUrl}/api/v1/crates/frob-tools/downloads`, {
            headers: { authorization: adminToken },
          });
          return ((await answer.json()) as { version_downloads: { downloads: number }[] }).version_downloads
            .length;
        },
        { timeout: 15_000 },
      )
      .toBeGreaterThan(0);
    await page.goto(`${wharf.baseUrl}/ui`);
    await page.getByLabel('Search crates and repositories').first().fill('frobnicator');
    await page.getByLabel('Search crates and repositories').first().press('Enter');
    await page.getByRole('link', { name: 'frob-tools' }).waitFor();
    await check(page, '07-search');
    await page.getByRole('link', { name: 'frob-tools' }).click();
    await page.getByRole('heading', { name: 'Frob tools' }).waitFor();
    // The README's script was removed by the server's sanitizer and would not run under the CSP anyway.
    expect(await page.title()).toBe('wharf');
    expect(await page.locator('.readme').textContent()).toContain('Frobnicating harbours since 2026');
    expect(await page.locator('.readme script').count()).toBe(0);
    // Both versions with their state, the newest selected.
    const yanked = page.getByRole('row').filter({ has: page.getByRole('link', { name: '0.1.0' }) });
    expect(await yanked.textContent()).toContain('yanked');
    const current = page.getByRole('row').filter({ has: page.getByRole('link', { name: '0.2.0' }) });
    expect(await current.textContent()).toContain('available');
    await page.getByRole('button', { name: 'Copy cargo add' }).click();
    await page.getByText('cargo add copied').waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(
      'cargo add frob-tools@0.2.0 --registry wharf',
    );
    // The one download, as a bar for today.
    expect(await page.locator('.chart svg').getAttribute('aria-label')).toBe(
      '1 download in the last 90 days',
    );
    expect(await page.locator('.chart rect').last().locator('title').textContent()).toBe(`${today}: 1`);
    expect(Number(await page.locator('.chart rect').last().getAttribute('height'))).toBeGreaterThan(0);
    await check(page, '08-crate');
  });

  it('pages a crate with 500 versions', { timeout: 300_000 }, async () => {
    for (let minor = 0; minor < 500; minor++) {
      const version = `1.${minor}.0`;
      const response = await fetch(`${wharf.baseUrl}/api/v1/crates/new`, {
        method: 'PUT',
        headers: { authorization: adminToken },
        body: publishBody(metadata('many-versions', version), await simpleCrate('many-versions', version)),
      });
      expect(response.status, version).toBe(200);
    }
    await page.goto(`${wharf.baseUrl}/ui/crates/many-versions`);
    await page.getByRole('heading', { name: 'Versions (500)' }).waitFor();
    const versions = page
      .locator('table')
      .filter({ has: page.getByRole('columnheader', { name: 'Version' }) });
    // One page of 25 at a time, newest first.
    expect(await versions.locator('tbody tr').count()).toBe(25);
    expect(await versions.locator('tbody tr').first().textContent()).toContain('1.499.0');
    await page
      .getByRole('navigation', { name: 'Versions pages' })
      .getByRole('button', { name: 'Next' })
      .click();
    await versions.getByRole('link', { name: '1.474.0' }).waitFor();
    expect(await versions.locator('tbody tr').count()).toBe(25);
    await check(page, '08b-crate-500-versions');
  });

  describe('repositories', () => {
    let layout: Awaited<ReturnType<typeof writeOciLayout>>;
    beforeAll(async () => {
      await writeFile(
        path.join(work, 'policy.json'),
        JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
      );
      layout = await writeOciLayout(path.join(work, 'layout'));
      const source = `oci:${path.join(work, 'layout')}`;
      await skopeo('admin', ADMIN_PASSWORD, `${source}:v1`, `docker://${host}/admin/app:v1`);
      await skopeo('admin', ADMIN_PASSWORD, '--all', `${source}:multi`, `docker://${host}/admin/app:multi`);
      // A signature referrer on v1, as cosign or notation attach one.
      await writeFile(path.join(work, 'sig.json'), JSON.stringify({ signed: 'v1' }));
      await tool('oras', ['login', '--plain-http', '-u', 'admin', '-p', ADMIN_PASSWORD, host]);
      await tool('oras', [
        'attach',
        '--plain-http',
        '--artifact-type',
        'application/vnd.dev.cosign.artifact.sig.v1+json',
        `${host}/admin/app:v1`,
        'sig.json:application/json',
      ]);
    }, 300_000);

    it('lists the namespace and the repository with its tags, digests and pull lines', {
      timeout: 120_000,
    }, async () => {
      await page.goto(`${wharf.baseUrl}/ui/namespace/admin`);
      await page.getByRole('link', { name: 'admin/app' }).click();
      await page.getByRole('rowheader', { name: 'multi' }).waitFor();
      expect(await page.getByRole('rowheader', { name: 'v1' }).count()).toBe(1);
      expect(await page.locator('main').textContent()).toContain(layout.image.digest.slice(0, 19));
      // No `latest` tag: the pull lines name the newest tag.
      await page.getByText(`docker pull ${host}/admin/app:multi`, { exact: true }).waitFor();
      expect(await page.locator('main').textContent()).not.toContain(':latest');
      // The index: its two platforms in the list; the single image: its config's.
      const multi = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'multi' }) });
      expect(await multi.textContent()).toContain('linux/amd64, linux/arm64');
      const single = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'v1' }) });
      expect(await single.textContent()).toContain('linux/amd64');
      await page.getByRole('button', { name: 'Details of v1' }).click();
      await page.getByRole('heading', { name: 'Referrers' }).waitFor();
      const details = page.locator('.tag-details');
      await details.getByText('application/vnd.dev.cosign.artifact.sig.v1+json').waitFor();
      expect(await details.locator('.badge').first().textContent()).toBe('signature');
      expect(await details.textContent()).toContain(`docker pull ${host}/admin/app:v1`);
      expect(await details.textContent()).toContain(`${host}/admin/app@${layout.image.digest}`);
      await check(page, '09-repository');
      await page.goto(`${wharf.baseUrl}/ui/namespace/admin`);
      await check(page, '10-namespace');
      // Search finds repositories too.
      await page.getByLabel('Search crates and repositories').first().fill('app');
      await page.getByLabel('Search crates and repositories').first().press('Enter');
      await page.getByRole('link', { name: 'admin/app' }).waitFor();
    });

    it('gives a user write on the repository, and skopeo copy succeeds for them', {
      timeout: 180_000,
    }, async () => {
      await page.goto(`${wharf.baseUrl}/ui/admin/users`);
      await page.getByLabel('User name').fill('bob');
      await page.getByLabel(/^Password/).fill('bob-password-123');
      await page.getByRole('button', { name: 'Create user' }).click();
      await page.getByText('User bob created.').waitFor();
      await check(page, '11-admin-users');
      const source = `oci:${path.join(work, 'layout')}:v1`;
      await expect(
        skopeo('bob', 'bob-password-123', source, `docker://${host}/admin/app:bob`),
      ).rejects.toThrow();

      await page.goto(`${wharf.baseUrl}/ui/repository/admin/app?tab=permissions`);
      await page.getByLabel('Name', { exact: true }).fill('bob');
      await page.getByLabel('Role', { exact: true }).selectOption('write');
      await page.getByRole('button', { name: 'Add' }).click();
      await page.getByText('bob now has write.').waitFor();
      await check(page, '12-repository-permissions');
      // The harness runs two replicas: the one that did not write the grant serves it within
      // registry.oci.metadataCacheMillis (docs/oci.md, "Caching"), and skopeo may reach either.
      await new Promise((resolve) => setTimeout(resolve, OCI_DEFAULTS.metadataCacheMillis + 200));
      await skopeo('bob', 'bob-password-123', source, `docker://${host}/admin/app:bob`);
    });

    it('changes the description and the visibility', { timeout: 60_000 }, async () => {
      await page.goto(`${wharf.baseUrl}/ui/repository/admin/app?tab=settings`);
      await page.getByLabel('Description').fill('The app, built nightly');
      await page.getByRole('radio', { name: /public/ }).check();
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByText('The app, built nightly').first().waitFor();
      await page.locator('.title-row .badge', { hasText: 'public' }).waitFor();
      await check(page, '12b-repository-settings');
      const record = await fetch(`${wharf.baseUrl}/api/v1/repository/admin/app`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      expect(await record.json()).toMatchObject({ description: 'The app, built nightly', is_public: true });
    });

    it('deletes a tag from the UI, as DELETE /v2/…/manifests/<tag> would', { timeout: 120_000 }, async () => {
      await page.goto(`${wharf.baseUrl}/ui/repository/admin/app`);
      await page.getByRole('rowheader', { name: 'bob', exact: true }).waitFor();
      page.once('dialog', (dialog) => dialog.accept());
      await page.getByRole('button', { name: 'Delete tag bob' }).click();
      await page.getByText('Tag bob deleted.').waitFor();
      await page.getByRole('rowheader', { name: 'bob', exact: true }).waitFor({ state: 'detached' });
      const tags = await fetch(`${wharf.baseUrl}/api/v1/repository/admin/app/tag/`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const names = ((await tags.json()) as { tags: { name: string }[] }).tags.map((tag) => tag.name);
      expect(names.sort()).toEqual(['multi', 'v1']);
    });

    it('is usable on a narrow screen', { timeout: 60_000 }, async () => {
      const narrow = await newContext({ width: 375 });
      const phone = await narrow.newPage();
      await signInWithPassword(phone, 'bob', 'bob-password-123');
      await phone.goto(`${wharf.baseUrl}/ui/repository/admin/app`);
      await phone.getByRole('rowheader', { name: 'v1' }).waitFor();
      // Nothing wider than the screen but the tables' own scrolling boxes.
      const tooWide = await phone.evaluate(`[...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > 376 && !e.parentElement.closest('.table-wrap, .copy-line code, pre'))
        .map((e) => e.tagName + '.' + e.className)`);
      expect(tooWide).toEqual([]);
      expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375);
      await check(phone, '13-repository-narrow');
      await narrow.close();
    });
  });

  it('manages robots, groups and services', { timeout: 120_000 }, async () => {
    await page.goto(`${wharf.baseUrl}/ui/robots`);
    await page.getByRole('heading', { name: 'No robots yet' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('ci');
    await page.getByRole('button', { name: 'Create robot' }).click();
    await page.getByRole('heading', { name: 'Robot admin+ci: its token' }).waitFor();
    await check(page, '14-robots');

    await page.goto(`${wharf.baseUrl}/ui/admin/groups`);
    await page.getByLabel('Group name').fill('platform');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: 'platform' }).waitFor();
    await page.getByLabel('Add user').fill('bob');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByText('bob added to platform.').waitFor();
    await check(page, '15-admin-groups');

    await page.goto(`${wharf.baseUrl}/ui/admin/services`);
    await page.getByRole('rowheader', { name: 'registry' }).waitFor();
    await check(page, '16-admin-services');
  });

  it('broke no Content-Security-Policy rule on any page', () => {
    expect(cspViolations).toEqual([]);
  });
});
