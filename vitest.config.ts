import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real components (MinIO, cargo, kube-apiserver) make some tests slow; two cores run them.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', './test/support/count-reporter.ts'],
  },
});
