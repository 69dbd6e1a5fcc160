import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { storeContract } from './contract.ts';

storeContract('fs', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-fs-'));
  const store = await FsObjectStore.open(dataDir);
  return {
    store,
    config: { driver: 'fs', dataDir },
    cleanup: async () => {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
