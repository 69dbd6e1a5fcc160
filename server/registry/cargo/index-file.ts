import { text } from 'node:stream/consumers';
import { type ObjectStore, PreconditionFailedError } from '../../store/object-store.ts';

/** A dependency as cargo reads it from an index line. */
export interface IndexDependency {
  name: string;
  req: string;
  features: string[];
  optional: boolean;
  default_features: boolean;
  target: string | null;
  kind: 'normal' | 'dev' | 'build';
  registry?: string | null;
  package?: string;
}

/** One version of a crate: one JSON line of its index file. Immutable except `yanked`. */
export interface IndexLine {
  name: string;
  vers: string;
  deps: IndexDependency[];
  cksum: string;
  features: Record<string, string[]>;
  yanked: boolean;
  links?: string | null;
  v?: number;
  features2?: Record<string, string[]>;
  rust_version?: string | null;
  pubtime?: string;
}

export function parseIndexFile(body: string): IndexLine[] {
  return body
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as IndexLine);
}

export function serializeIndexFile(lines: IndexLine[]): string {
  return lines.map((line) => `${JSON.stringify(line)}\n`).join('');
}

export class IndexContentionError extends Error {
  constructor(key: string) {
    super(`too many concurrent writers on ${key}`);
    this.name = 'IndexContentionError';
  }
}

/**
 * Read-modify-write of an index file with conditional writes, retried on conflict: the same
 * guarantee as json-doc's updateJson, for a file whose bytes are served as they are stored.
 * `change` returns the new lines, or undefined to leave the file as it is; it may run many times.
 */
export async function updateIndexFile(
  store: ObjectStore,
  key: string,
  change: (current: IndexLine[]) => IndexLine[] | undefined,
  { attempts = 200, known }: { attempts?: number; known?: { body: Buffer; etag: string } | null } = {},
): Promise<IndexLine[]> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    // A caller that has just read the file passes it in (`known`; null = absent): the first attempt
    // writes conditionally on that copy, and a conflict re-reads it like any other.
    const object =
      attempt === 0 && known !== undefined
        ? known && { etag: known.etag, body: known.body.toString('utf8') }
        : await readText(store, key);
    const current = object ? parseIndexFile(object.body) : [];
    const next = change(current);
    if (next === undefined) return current;
    try {
      await store.put(key, serializeIndexFile(next), {
        contentType: 'text/plain; charset=utf-8',
        ...(object ? { ifMatch: object.etag } : { ifNoneMatch: '*' }),
      });
      return next;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Jittered backoff: 50 writers on one crate spread out instead of colliding again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(250, 5 * 2 ** attempt)));
    }
  }
  throw new IndexContentionError(key);
}

async function readText(store: ObjectStore, key: string): Promise<{ etag: string; body: string } | null> {
  const object = await store.get(key);
  return object ? { etag: object.etag, body: await text(object.body) } : null;
}

export async function readIndexFile(store: ObjectStore, key: string): Promise<IndexLine[] | null> {
  const object = await store.get(key);
  return object ? parseIndexFile(await text(object.body)) : null;
}
