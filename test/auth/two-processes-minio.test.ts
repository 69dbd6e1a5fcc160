import { startMinio } from '../support/minio.ts';
import { twoProcessesOnOneStore } from './two-processes.ts';

/** The deployment shape: AuthService replicas share nothing but one S3 bucket (a real MinIO). */
twoProcessesOnOneStore('MinIO bucket', async () => {
  const minio = await startMinio();
  const bucket = await minio.createBucket();
  return {
    env: {
      WHARF_STORE: 's3',
      WHARF_S3_BUCKET: bucket,
      WHARF_S3_ENDPOINT: minio.endpoint,
      WHARF_S3_REGION: minio.region,
      WHARF_S3_FORCE_PATH_STYLE: 'true',
      WHARF_S3_ACCESS_KEY_ID: minio.accessKeyId,
      WHARF_S3_SECRET_ACCESS_KEY: minio.secretAccessKey,
    },
    cleanup: () => minio.stop(),
  };
});
