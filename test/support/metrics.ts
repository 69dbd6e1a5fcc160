/** A scrape of a `/metrics` listener over a real socket, read back as numbers. */
export interface Scrape {
  text: string;
  /**
   * The sum of the samples named `name` whose labels include `labels` (0 when there is none):
   * `value('wharf_store_operation_duration_seconds_count', { operation: 'put' })` adds every result.
   */
  value(name: string, labels?: Record<string, string>): number;
}

export async function scrape(metricsUrl: string): Promise<Scrape> {
  const response = await fetch(`${metricsUrl}/metrics`);
  if (response.status !== 200) throw new Error(`GET ${metricsUrl}/metrics: ${response.status}`);
  const text = await response.text();
  const samples = text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`unreadable metrics line: ${line}`);
      const labels = Object.fromEntries(
        [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [
          pair[1]!,
          pair[2]!,
        ]),
      );
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
  return {
    text,
    value(name, labels = {}) {
      return samples
        .filter(
          (sample) =>
            sample.name === name &&
            Object.entries(labels).every(([key, want]) => sample.labels[key] === want),
        )
        .reduce((sum, sample) => sum + sample.value, 0);
    },
  };
}
