import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import type { TestServer } from '../support/wharf.ts';
import { createUser, startOci } from './support.ts';

describe('OCI proxy configuration', () => {
  const servers: TestServer[] = [];
  let dir = '';

  afterAll(async () => {
    for (const server of servers) await server.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('warns at startup when a proxy namespace is also the name of a user', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wharf-proxy-config-'));
    const store = await FsObjectStore.open(dir);
    const first = await startOci({}, { store, listen: false });
    servers.push(first);
    await createUser(first, 'alice', 'alice-password');
    await first.stop();
    servers.pop();
    // The same store, now with a proxy named as alice's namespace and one named as nobody.
    const second = await startOci(
      {
        registry: {
          oci: {
            proxies: [
              { namespace: 'alice', upstream: 'http://127.0.0.1:9' },
              { namespace: 'mirror', upstream: 'http://127.0.0.1:9' },
            ],
          },
        },
      },
      { store, listen: false },
    );
    servers.push(second);
    const warning = /proxy namespace alice is also the name of a user/;
    for (let i = 0; i < 100 && !warning.test(second.logs()); i++) await sleep(50);
    expect(second.logs()).toMatch(warning);
    expect(second.logs()).not.toMatch(/proxy namespace mirror/);
  }, 60_000);
});
