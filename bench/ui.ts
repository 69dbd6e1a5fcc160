/**
 * The web UI's cost to a browser:
 * - what the first page downloads: index.html and the assets it references, raw, gzip and brotli
 *   (the server sends the precompressed files the build writes);
 * - time to first render of a repository page with 2,000 tags in headless Chromium: from navigation
 *   start until the first page of tags is on screen (first contentful paint beside it), median of
 *   several cold page loads, with the API v1 tag page it waits for timed on its own.
 *
 * The server is the real program (`node server/main.ts`, fs store); the UI is dist/web as
 * `npm run build` makes it.
 *
 *   npx node bench/ui.ts [--tags 2000] [--runs 7]
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { defaultUiDirectory } from '../server/web/plugin.ts';
import { launchChromium } from '../test/openid/chromium.ts';
import { freePort, startWharfProcess } from '../test/support/spawn-wharf.ts';
import { ensureUiBuilt } from '../test/web/built-ui.ts';

function option(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}
const tagCount = Number(option('tags')) || 2000;
const runs = Number(option('runs')) || 7;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

async function firstPageSizes(): Promise<void> {
  const directory = ensureUiBuilt() || defaultUiDirectory();
  const html = await readFile(path.join(directory, 'index.html'));
  const files = [
    { name: 'index.html', body: html },
    ...(await Promise.all(
      [...html.toString().matchAll(/(?:src|href)="\/ui\/(assets\/[^"]+)"/g)].map(async ([, asset]) => ({
        name: asset as string,
        body: await readFile(path.join(directory, asset as string)),
      })),
    )),
  ];
  let raw = 0;
  let gzip = 0;
  let brotli = 0;
  console.log('first page (what a browser downloads for any UI URL):');
  for (const file of files) {
    const gz = gzipSync(file.body, { level: 9 }).length;
    const br = brotliCompressSync(file.body).length;
    raw += file.body.length;
    gzip += gz;
    brotli += br;
    console.log(
      `  ${file.name.padEnd(36)} ${kib(file.body.length).padStart(10)} raw ${kib(gz).padStart(10)} gzip ${kib(br).padStart(10)} br`,
    );
  }
  console.log(
    `  ${'total'.padEnd(36)} ${kib(raw).padStart(10)} raw ${kib(gzip).padStart(10)} gzip ${kib(brotli).padStart(10)} br`,
  );
}

async function repositoryPage(): Promise<void> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-bench-ui-'));
  const server = await startWharfProcess({
    PORT: String(await freePort()),
    WHARF_DATA_DIR: dataDir,
    WHARF_SIGNUP: 'open',
    WHARF_LOG_LEVEL: 'warn',
    WHARF_OCI_GC_ENABLED: 'false',
  });
  const browser = await launchChromium();
  try {
    const { url } = server;
    const signup = await fetch(`${url}/ktra/api/v1/new_user/bench`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'bench-password' }),
    });
    if (signup.status !== 200) throw new Error(`signup: ${signup.status}`);
    const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
    const token = (await (
      await fetch(`${url}/v2/auth?service=wharf&scope=repository:bench/app:pull,push`, {
        headers: { authorization: basic },
      })
    ).json()) as { token: string };
    const auth = { authorization: `Bearer ${token.token}` };
    const config = Buffer.from(
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
    );
    const configDigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
    const blob = await fetch(`${url}/v2/bench/app/blobs/uploads/?digest=${configDigest}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: config,
    });
    if (blob.status !== 201) throw new Error(`blob push: ${blob.status}`);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: [],
    });
    const started = performance.now();
    for (let i = 0; i < tagCount; i++) {
      const put = await fetch(`${url}/v2/bench/app/manifests/v${String(i).padStart(5, '0')}`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: manifest,
      });
      if (put.status !== 201) throw new Error(`manifest push: ${put.status}`);
    }
    console.log(`\n${tagCount} tags pushed in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/ui/signin`);
    await page.getByLabel('User name').fill('bench');
    await page.getByLabel('Password').fill('bench-password');
    await page.locator('form.stack button[type="submit"]').click();
    await page.getByRole('button', { name: 'Sign out bench' }).waitFor();
    const cookies = await context.cookies();

    const apiTimes: number[] = [];
    for (let i = 0; i < runs; i++) {
      const at = performance.now();
      const response = await fetch(`${url}/api/v1/repository/bench/app/tag/?page=1&limit=50`, {
        headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; ') },
      });
      await response.arrayBuffer();
      apiTimes.push(performance.now() - at);
    }

    const renders: number[] = [];
    const paints: number[] = [];
    const tagStarts: number[] = [];
    const tagEnds: number[] = [];
    for (let i = 0; i < runs; i++) {
      // A fresh page each time: no warm JavaScript heap, the assets from the HTTP cache as a return visit has them.
      const tab = await context.newPage();
      await tab.goto(`${url}/ui/repository/bench/app`, { waitUntil: 'commit' });
      await tab.locator('table.tags tbody th').first().waitFor();
      renders.push((await tab.evaluate('performance.now()')) as number);
      const tagRequest = (await tab.evaluate(
        "(() => { const e = performance.getEntriesByType('resource').find((r) => r.name.includes('/tag/')); return e ? [e.startTime, e.responseEnd] : [NaN, NaN]; })()",
      )) as [number, number];
      tagStarts.push(tagRequest[0]);
      tagEnds.push(tagRequest[1]);
      paints.push(
        (await tab.evaluate(
          "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN",
        )) as number,
      );
      await tab.close();
    }
    console.log(`repository page with ${tagCount} tags (50 a page), median of ${runs}:`);
    console.log(`  first contentful paint        ${median(paints).toFixed(0)} ms`);
    console.log(
      `  tag page requested at         ${median(tagStarts).toFixed(0)} ms, answered at ${median(tagEnds).toFixed(0)} ms`,
    );
    console.log(`  first page of tags on screen  ${median(renders).toFixed(0)} ms`);
    console.log(
      `  of which API v1 tag page      ${median(apiTimes).toFixed(0)} ms (GET …/tag/?page=1&limit=50, from Node)`,
    );
  } finally {
    await browser.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await firstPageSizes();
await repositoryPage();
