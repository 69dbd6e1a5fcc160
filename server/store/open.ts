import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import type { StoreConfig } from '../config/types.ts';
import { FsObjectStore } from './fs-store.ts';
import type { ObjectStore } from './object-store.ts';

export async function openStore(config: StoreConfig, logger: Logger): Promise<ObjectStore> {
  if (config.driver === 'fs') {
    const store = await FsObjectStore.open(config.dataDir);
    logger.info({ store: 'fs', dataDir: path.resolve(config.dataDir) }, 'object store opened');
    return store;
  }
  throw new ConfigError('configuration setting "store.driver": s3 is not available yet');
}
