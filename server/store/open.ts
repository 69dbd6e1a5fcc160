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
  if (!config.s3) {
    throw new ConfigError(
      'configuration setting "store.s3.bucket" (WHARF_S3_BUCKET) is required with the s3 store',
    );
  }
  // Loaded only for s3: the AWS SDK costs ~60 MB of resident memory that an fs deployment never uses.
  const { S3ObjectStore } = await import('./s3-store.ts');
  // Refuses to start (ConfigError) when the bucket is unreachable or conditional writes are ignored.
  return S3ObjectStore.open(config.s3, logger);
}
