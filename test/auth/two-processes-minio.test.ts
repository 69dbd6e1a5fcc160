import { startMinio } from '../support/minio.ts';
import { twoProcessesOnOneStore } from './two-processes.ts';

/** The deployment shape: AuthService replicas share nothing but one S3 bucket (a real MinIO). */
twoProcessesOnOneStore('MinIO bucket', async () => {
  const minio = await startMinio();
  const bucket = await minio.createBucket();
  return {
    env: {
      ...minio.wharfEnv(bucket),
    },
    cleanup: () => minio.stop(),
  };
});
