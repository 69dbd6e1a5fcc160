import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { renderReadme } from '../../hack/config-docs.ts';

it('the README lists every configuration setting as the schema defines it (npm run gen:config-docs)', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  expect(readme).toBe(renderReadme(readme));
});
