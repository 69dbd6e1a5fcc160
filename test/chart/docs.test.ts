import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { renderChartReadme, valuesTable } from '../../hack/chart-docs.ts';

const values = readFileSync(new URL('../../charts/wharf/values.yaml', import.meta.url), 'utf8');

it('the chart README lists every value as values.yaml comments it (npm run gen:chart-docs)', () => {
  const readme = readFileSync(new URL('../../charts/wharf/README.md', import.meta.url), 'utf8');
  expect(readme).toBe(renderChartReadme(readme, values));
});

it('documents every value: each row has a meaning, or the section it belongs to has one', () => {
  const rows = valuesTable(values)
    .split('\n')
    .slice(2)
    .map((row) => {
      const [, key, , meaning] = row.split(/(?<!\\)\|/).map((cell) => cell.trim());
      return { key: key!.replaceAll('`', ''), meaning: meaning! };
    });
  const documented = new Set(rows.filter((row) => row.meaning).map((row) => row.key));
  const undocumented = rows
    .filter((row) => !row.meaning)
    .filter((row) => {
      const parts = row.key.split('.');
      return !parts.some((_, index) => documented.has(parts.slice(0, index).join('.')));
    })
    .map((row) => row.key);
  expect(undocumented).toEqual([]);
  // A value added to values.yaml is a row: the table is complete, not a selection.
  expect(rows.map((row) => row.key)).toEqual(
    expect.arrayContaining(['image.digest', 'networkPolicy.enabled', 'cleanupOnUninstall.timeoutSeconds']),
  );
});

it('keeps a comment that spans lines as one cell, an example as code, and escapes what Markdown would eat', () => {
  const table = valuesTable(
    '# file header\n\n# first line\n# second | line <b>\nkey: 1\nsection:\n  # example:\n  #   - a: 1\n  list: []\n',
  );
  expect(table.split('\n').slice(2)).toEqual([
    '| `key` | `1` | first line second \\| line &lt;b&gt; |',
    '| `section.list` | `[]` | example:<br>`- a: 1` |',
  ]);
});
