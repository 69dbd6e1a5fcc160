import pino from 'pino';
import { S3ObjectStore } from '../../server/store/s3-store.ts';
import { type MinioServer, startMinio } from '../support/minio.ts';
import { storeContract } from './contract.ts';

let minio: MinioServer | undefined;

storeContract('s3 (MinIO)', async () => {
  minio = await startMinio();
  const config = minio.storeConfig(await minio.createBucket());
  const store = await S3ObjectStore.open(config.s3!, pino({ level: 'silent' }));
  return {
    store,
    config,
    cleanup: async () => {
      await store.close();
      await minio?.stop();
    },
  };
});
