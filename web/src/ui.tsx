import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';

/** Loads data for a page; `reload` fetches again after a change. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  // The caller names what the load depends on.
  const run = useCallback(() => {
    setLoading(true);
    setError(null);
    load()
      .then((value) => setData(value))
      .catch((failure: Error) => setError(failure))
      .finally(() => setLoading(false));
  }, deps);
  useEffect(run, [run]);
  return { data, error, loading, reload: run };
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function Failure({ error }: { error: Error }) {
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}

/** A command or a line to paste, with a button that copies it. */
export function CopyLine({ label, text }: { label: string; text: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard.writeText(text);
    setCopied(true);
    setTimeout(() => setCopied(false), 2000);
  };
  return (
    <div class="copy-line">
      <span class="copy-label">{label}</span>
      <code>{text}</code>
      <button type="button" class="small" onClick={copy}>
        {copied ? 'Copied' : 'Copy'}
        <span class="visually-hidden"> {label}</span>
      </button>
      <span class="visually-hidden" aria-live="polite">
        {copied ? `${label} copied` : ''}
      </span>
    </div>
  );
}

/** A table's column headers, and the unlabelled column of per-row buttons (named for screen readers). */
export function TableHead({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column) => (
          <th scope="col" key={column}>
            {column}
          </th>
        ))}
        <th scope="col">
          <span class="visually-hidden">Actions</span>
        </th>
      </tr>
    </thead>
  );
}

export function EmptyState({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="empty" aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

export function Pager({
  page,
  hasNext,
  onPage,
  label,
}: {
  page: number;
  hasNext: boolean;
  onPage: (page: number) => void;
  label: string;
}) {
  if (page === 1 && !hasNext) return null;
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span aria-current="page">Page {page}</span>
      <button type="button" disabled={!hasNext} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function age(when: string | number | null | undefined): string {
  if (when === null || when === undefined) return '—';
  const millis = typeof when === 'number' ? when * 1000 : Date.parse(when);
  if (Number.isNaN(millis)) return '—';
  const seconds = Math.max(0, (Date.now() - millis) / 1000);
  const steps: [number, string][] = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [30, 'day'],
    [12, 'month'],
    [Number.POSITIVE_INFINITY, 'year'],
  ];
  let value = seconds;
  for (const [size, name] of steps) {
    if (value < size) {
      const n = Math.floor(value);
      return `${n} ${name}${n === 1 ? '' : 's'} ago`;
    }
    value /= size;
  }
  return '—';
}

export function shortDigest(digest: string | null | undefined): string {
  if (!digest) return '—';
  const [algorithm, hex] = digest.split(':');
  return `${algorithm}:${(hex ?? '').slice(0, 12)}`;
}

/** How a new user gets in: cargo and docker, with this registry's address. */
export function GettingStarted({ baseUrl, host }: { baseUrl: string; host: string }) {
  return (
    <div class="getting-started">
      <h3>Cargo</h3>
      <p>
        Add the registry to <code>~/.cargo/config.toml</code>, create a token on the{' '}
        <a href="/ui/tokens">Tokens</a> page, then log in and publish:
      </p>
      <pre>{`[registries.wharf]
index = "sparse+${baseUrl}/index/"

[registry]
global-credential-providers = ["cargo:token"]`}</pre>
      <CopyLine label="cargo login" text="cargo login --registry wharf" />
      <CopyLine label="cargo publish" text="cargo publish --registry wharf" />
      <h3>Docker and skopeo</h3>
      <p>Log in with your user name and a token (or your password), then push to your own namespace:</p>
      <CopyLine label="docker login" text={`docker login ${host}`} />
      <CopyLine label="docker push" text={`docker push ${host}/YOUR_NAME/IMAGE:TAG`} />
    </div>
  );
}
