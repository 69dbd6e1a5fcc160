import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cargo, cargoHome, registryToml, writeCrate } from '../cargo/cargo-cli.ts';
import { launchChromium } from './chromium.ts';
import { type Harness, startHarness } from './harness.ts';

const SCREENSHOTS = new URL('../../test-results/screenshots/', import.meta.url);

/**
 * A person in headless Chromium: signs in at the provider's pages, lands on the token page, takes
 * the token, replaces it; another person outside the allow-lists is refused. Every page they see
 * is saved to test-results/screenshots/.
 */
describe('OpenID login in Chromium', () => {
  let wharf: Harness;
  let browser: Browser;
  let work: string;
  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    work = await mkdtemp(path.join(tmpdir(), 'wharf-oidc-cargo-'));
    // The whole server (AuthService and Cargo registry), as `npm start` runs it.
    [wharf, browser] = await Promise.all([
      startHarness({ settings: { roles: ['auth', 'registry'] } }),
      launchChromium(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await wharf?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** The real cargo: `cargo login` with the token from the page, then `cargo publish`. */
  async function loginAndPublish(home: string, token: string | null, version: string) {
    const options = { cwd: work, home, targetDir: path.join(work, 'target') };
    if (token !== null) {
      const login = await cargo(['login', '--registry', 'wharf'], { ...options, input: `${token}\n` });
      expect(login.code, login.stderr).toBe(0);
    }
    const dir = await writeCrate(work, { name: 'sso-crate', version });
    return cargo(['publish', '--registry', 'wharf', '--no-verify'], { ...options, cwd: dir });
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: new URL(name, SCREENSHOTS).pathname, fullPage: true });

  /** From a wharf URL through the provider's login and consent pages, back to wharf. */
  async function signIn(page: Page, start: string, login: string) {
    await page.goto(start, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('input[name="login"]');
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', 'any-password');
    await shot(page, `${login}-1-provider-login.png`);
    await Promise.all([page.waitForURL(/\/interaction\//), page.click('button[type="submit"]')]);
    await page.waitForSelector('button[type="submit"]');
    await shot(page, `${login}-2-provider-consent.png`);
    await Promise.all([
      page.waitForURL((url) => url.pathname.startsWith('/ktra/api/v1/openid/')),
      page.click('button[type="submit"]'),
    ]);
    await page.waitForLoadState('domcontentloaded');
  }

  it('signs a user in, shows the token page; cargo publishes with the token; replacing it revokes the old one', {
    timeout: 300_000,
  }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const responses: number[] = [];
    page.on('response', (response) => {
      if (response.url().startsWith(wharf.baseUrl)) responses.push(response.status());
    });
    await signIn(page, `${wharf.baseUrl}/me`, 'alice');
    expect(await page.title()).toContain('Your new registry token');
    await shot(page, 'alice-3-token-page.png');
    const token = (await page.textContent('#token'))!.trim();
    expect(token).toMatch(/^wharf_[A-Za-z0-9_-]{43}$/);
    expect(await page.textContent('body')).toContain('corp:alice');
    expect(await wharf.auth.accountOfToken(token)).toBe('alice');
    const home = await cargoHome(registryToml('wharf', wharf.baseUrl));
    const published = await loginAndPublish(home, token, '1.0.0');
    expect(published.code, published.stderr).toBe(0);
    expect(published.stderr).toMatch(/Published sso-crate v1\.0\.0/);
    expect(await readFile(path.join(home, 'credentials.toml'), 'utf8')).toContain(token);
    for (const url of [page.url(), ...responses.map(String)]) expect(url).not.toContain(token);

    // Coming back later in the same browser: the same token, no provider round trip.
    await page.goto(`${wharf.baseUrl}/me`);
    expect(await page.title()).toContain('Your registry token');
    expect((await page.textContent('#token'))!.trim()).toBe(token);

    await Promise.all([page.waitForURL(/replace_token/), page.click('text=Replace this token')]);
    expect(await page.title()).toContain('Your token was replaced');
    await shot(page, 'alice-4-token-replaced.png');
    const replacement = (await page.textContent('#token'))!.trim();
    expect(replacement).not.toBe(token);
    expect(await wharf.auth.accountOfToken(token)).toBeNull();
    expect(await wharf.auth.accountOfToken(replacement)).toBe('alice');
    // cargo still holds the old token: refused. After `cargo login` with the new one: published.
    const stale = await loginAndPublish(home, null, '1.0.1');
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/403 Forbidden.*token is invalid, expired or revoked/);
    const fresh = await loginAndPublish(home, replacement, '1.0.1');
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).toMatch(/Published sso-crate v1\.0\.1/);
    await context.close();
  });

  it('shows a clear refusal page to a user outside the allow-lists', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, `${wharf.baseUrl}/me`, 'bob');
    expect(await page.title()).toContain('Access refused');
    const text = (await page.textContent('main'))!;
    expect(text).toContain('you are not among them');
    expect(text).not.toContain('wharf_');
    await shot(page, 'bob-3-refused.png');
    await context.close();
  });

  it("shows the provider's refusal as a clear page when the user cancels at the provider", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${wharf.baseUrl}/me`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('input[name="login"]');
    await Promise.all([
      page.waitForURL((url) => url.pathname.startsWith('/ktra/api/v1/openid/')),
      page.click('text=Cancel'),
    ]);
    expect(await page.title()).toContain('The identity provider did not sign you in');
    expect(await page.textContent('main')).toContain('access_denied');
    await shot(page, 'dave-provider-cancel.png');
    await context.close();
  });

  it('lets a person choose among several providers', async () => {
    const several = await startHarness({ extraProviders: [{ name: 'partner', accountPrefix: 'partner-' }] });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${several.baseUrl}/me`);
      expect(await page.title()).toContain('Sign in');
      await shot(page, 'erin-0-choose-provider.png');
      await Promise.all([page.waitForURL(/\/interaction\//), page.click('text=partner')]);
      await page.fill('input[name="login"]', 'erin');
      await page.fill('input[name="password"]', 'any-password');
      await Promise.all([page.waitForURL(/\/interaction\//), page.click('button[type="submit"]')]);
      await Promise.all([
        page.waitForURL((url) => url.pathname.startsWith('/ktra/api/v1/openid/')),
        page.click('button[type="submit"]'),
      ]);
      // erin is in no authorized group or list of this provider.
      expect(await page.title()).toContain('Access refused');
      expect(await page.textContent('main')).toContain('signed in at partner as erin');
    } finally {
      await context.close();
      await several.close();
    }
  });

  it('shows a clear page when a sign-in link is used twice', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, `${wharf.baseUrl}/me`, 'carol');
    const callback = page.url();
    expect(await page.title()).toContain('token');
    const replay = await page.goto(callback);
    expect(replay?.status()).toBe(400);
    expect(await page.textContent('main')).toContain('already used');
    await shot(page, 'carol-4-replayed-state.png');
    await context.close();
  });
});
