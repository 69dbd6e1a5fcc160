import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';
import type { TestServer } from '../support/wharf.ts';
import { basic, createUser, startOci } from './support.ts';

/**
 * A real fs store whose blob-data writes fail the way a full disk fails them. This is a wrapper
 * around the real store, named as such: a full disk cannot be made safely on the test machine.
 */
function failingBlobWrites(store: FsObjectStore): ObjectStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'put') {
        return (
          key: string,
          ...rest: Parameters<ObjectStore['put']> extends [string, ...infer R] ? R : never
        ) => {
          if (key.startsWith('oci/data/')) {
            const error = new Error(`ENOSPC: no space left on device, write '/srv/secret-volume/${key}'`);
            return Promise.reject(Object.assign(error, { code: 'ENOSPC' }));
          }
          return target.put(key, ...rest);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('OCI registry failures', () => {
  let dir: string;
  let server: TestServer;
  let auth: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-oci-failing-'));
    server = await startOci({}, { store: failingBlobWrites(await FsObjectStore.open(dir)) });
    await createUser(server, 'alice', 'alice-password');
    const token = await fetch(`${server.url}/v2/auth?service=wharf&scope=repository:alice/app:pull,push`, {
      headers: { authorization: basic('alice', 'alice-password') },
    });
    auth = { authorization: `Bearer ${((await token.json()) as { token: string }).token}` };
  });

  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a store failure with 500 UNKNOWN in the spec format, logs it, and leaks no path', async () => {
    const blob = randomBytes(4096);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const response = await fetch(`${server.url}/v2/alice/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toContain('application/json');
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({
      errors: [{ code: 'UNKNOWN', message: 'the registry failed to handle the request', detail: null }],
    });
    expect(text).not.toContain('secret-volume');
    expect(server.logs()).toContain('no space left on device');
    // Nothing half-written became visible.
    const head = await fetch(`${server.url}/v2/alice/app/blobs/${digest}`, { method: 'HEAD', headers: auth });
    expect(head.status).toBe(404);
  });
});
