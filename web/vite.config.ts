import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The web UI: Preact components in strict TypeScript, bundled by Vite into dist/web with content
 * hashes in every asset name (served by server/web/plugin.ts under /ui/assets/, cached for a year).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
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
