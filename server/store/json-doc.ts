import { text } from 'node:stream/consumers';
import { type ObjectStore, PreconditionFailedError } from './object-store.ts';

/** A JSON document read from the store, with the ETag needed to write it back conditionally. */
export interface Versioned<T> {
  value: T;
  etag: string;
}

export async function readJson<T>(store: ObjectStore, key: string): Promise<Versioned<T> | null> {
  const object = await store.get(key);
  if (!object) return null;
  return { value: JSON.parse(await text(object.body)) as T, etag: object.etag };
}

/** Creates a document only if the key is free; returns false when it already exists. */
export async function createJson(store: ObjectStore, key: string, value: unknown): Promise<boolean> {
  try {
    await store.put(key, JSON.stringify(value), { ifNoneMatch: '*', contentType: 'application/json' });
    return true;
  } catch (error) {
    if (error instanceof PreconditionFailedError) return false;
    throw error;
  }
}

export class TooMuchContentionError extends Error {
  constructor(key: string, attempts: number) {
    super(`gave up updating ${key} after ${attempts} conflicting attempts`);
    this.name = 'TooMuchContentionError';
  }
}

/**
 * Read-modify-write without lost updates: `change` gets the current value (or null) and returns the
 * new one, or `undefined` to leave the object as it is. On a conflicting write the whole cycle runs
 * again on fresh data, so `change` must be a pure function of its input.
 */
export async function updateJson<T>(
  store: ObjectStore,
  key: string,
  change: (current: T | null) => T | undefined | Promise<T | undefined>,
  { attempts = 100 }: { attempts?: number } = {},
): Promise<T | null> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await readJson<T>(store, key);
    const next = await change(current ? current.value : null);
    if (next === undefined) return current ? current.value : null;
    try {
      await store.put(key, JSON.stringify(next), {
        contentType: 'application/json',
        ...(current ? { ifMatch: current.etag } : { ifNoneMatch: '*' }),
      });
      return next;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Back off with jitter so that many writers on one key spread out instead of colliding again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 5 * 2 ** attempt)));
    }
  }
  throw new TooMuchContentionError(key, attempts);
}
