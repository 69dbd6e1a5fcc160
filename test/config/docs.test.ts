import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { renderReadme } from '../../hack/config-docs.ts';
import { renderScopeDocs } from '../../hack/scope-docs.ts';

it('the README lists every configuration setting as the schema defines it (npm run gen:config-docs)', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  expect(readme).toBe(renderReadme(readme));
});

it('docs/identity.md shows the scope table as server/identity/scopes.ts defines it (npm run gen:scope-docs)', () => {
  const docs = readFileSync(new URL('../../docs/identity.md', import.meta.url), 'utf8');
  expect(docs).toBe(renderScopeDocs(docs));
});
