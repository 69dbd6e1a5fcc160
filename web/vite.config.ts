import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

/**
 * Writes `.br` and `.gz` beside each script, stylesheet and icon: the server sends them as they are
 * (@fastify/static `preCompressed`), so no request pays for compression and nothing needs an Ingress
 * that compresses.
 */
function precompress(): Plugin {
  return {
    name: 'wharf-precompress',
    apply: 'build',
    async writeBundle(options) {
      const assets = path.join(options.dir as string, 'assets');
      for (const name of await readdir(assets)) {
        if (!/\.(js|css|svg)$/.test(name)) continue;
        const body = await readFile(path.join(assets, name));
        await writeFile(path.join(assets, `${name}.br`), brotliCompressSync(body));
        await writeFile(path.join(assets, `${name}.gz`), gzipSync(body, { level: 9 }));
      }
    },
  };
}

/**
 * The web UI: Preact components in strict TypeScript, bundled by Vite into dist/web with content
 * hashes in every asset name (served by server/web/plugin.ts under /ui/assets/, cached for a year).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  publicDir: false,
  plugins: [precompress()],
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  // `npx vite --config web/vite.config.ts`: the UI with instant reloads on http://localhost:5173/ui/,
  // every other path (the APIs) from a server started with `npm start`.
  server: { proxy: { '^/(?!ui/|ui$|@|node_modules/|src/)': 'http://localhost:8080' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // No inline polyfill: the Content-Security-Policy allows scripts from files only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: true,
    target: 'es2022',
  },
});
