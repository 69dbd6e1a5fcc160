import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { twoProcessesOnOneStore } from './two-processes.ts';

twoProcessesOnOneStore('shared fs data directory', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-shared-'));
  return {
    env: { WHARF_STORE: 'fs', WHARF_DATA_DIR: dataDir },
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
});
