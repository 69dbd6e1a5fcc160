import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3Config, StoreConfig } from '../../server/config/types.ts';
import { toolPath } from './tools.ts';

export interface MinioServer {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** An SDK client with the root credentials, for tests that look at the bucket behind wharf's back. */
  client: S3Client;
  /** Creates a bucket (a fresh random name when none is given) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** An s3 StoreConfig for a bucket, credentials included, so that a child process can open it too. */
  storeConfig(bucket: string, overrides?: Partial<S3Config>): StoreConfig;
  /** The same as environment variables, for a wharf process started on this bucket. */
  wharfEnv(bucket: string): Record<string, string>;
  stop(): Promise<void>;
}

const USE_SETPRIV = existsSync('/usr/bin/setpriv');

/**
 * Starts a real MinIO server (built by hack/minio.sh) on a random loopback port with a temporary
 * data directory. It dies with the test process: stop() kills it, an exit handler covers a test file
 * that ends without stopping it, and Linux's parent-death signal (setpriv --pdeathsig) covers a test
 * worker that is itself killed.
 */
export async function startMinio(): Promise<MinioServer> {
  const binary = await toolPath('minio');
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-minio-'));
  const accessKeyId = `wharf-${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  let child: ChildProcess | undefined;
  let port = 0;
  const onExit = () => {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  try {
    // A free port can be taken by someone else before MinIO binds it: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      child = launch(binary, port, dataDir, accessKeyId, secretAccessKey);
      try {
        await waitUntilLive(child, `http://127.0.0.1:${port}`);
        break;
      } catch (error) {
        child.kill('SIGKILL');
        if (attempt >= 3) throw error;
      }
    }
  } catch (error) {
    onExit();
    process.off('exit', onExit);
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  const running = child;
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    region,
    client,
    async createBucket(name = `wharf-${randomBytes(6).toString('hex')}`) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    storeConfig(bucket, overrides = {}) {
      return {
        driver: 's3',
        dataDir: './data',
        s3: {
          bucket,
          endpoint,
          region,
          forcePathStyle: true,
          accessKeyId,
          secretAccessKey,
          prefix: '',
          presignDownloads: false,
          ...overrides,
        },
      };
    },
    wharfEnv(bucket) {
      return {
        WHARF_STORE: 's3',
        WHARF_S3_BUCKET: bucket,
        WHARF_S3_ENDPOINT: endpoint,
        WHARF_S3_REGION: region,
        WHARF_S3_FORCE_PATH_STYLE: 'true',
        WHARF_S3_ACCESS_KEY_ID: accessKeyId,
        WHARF_S3_SECRET_ACCESS_KEY: secretAccessKey,
      };
    },
    async stop() {
      client.destroy();
      if (running.exitCode === null && running.signalCode === null) {
        const exited = new Promise((resolve) => running.once('exit', resolve));
        running.kill('SIGTERM');
        const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', onExit);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function launch(binary: string, port: number, dataDir: string, user: string, password: string): ChildProcess {
  const args = ['server', '--quiet', '--address', `127.0.0.1:${port}`, dataDir];
  const [command, argv] = USE_SETPRIV
    ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', binary, ...args]]
    : [binary, args];
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmpdir(),
      MINIO_ROOT_USER: user,
      MINIO_ROOT_PASSWORD: password,
      MINIO_BROWSER: 'off', // no web console, so no second port
      MINIO_UPDATE: 'off',
      MINIO_CI_CD: 'on', // accept a data directory on the root filesystem
      MINIO_PROMETHEUS_AUTH_TYPE: 'public', // request counts per bucket, for bench/oci.ts
    },
  });
  // Keep the tail of MinIO's output for the error message when it does not come up.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  Object.defineProperty(child, 'outputTail', { get: () => output });
  return child;
}

async function waitUntilLive(child: ChildProcess, endpoint: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const response = await fetch(`${endpoint}/minio/health/live`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const tail = (child as ChildProcess & { outputTail?: string }).outputTail ?? '';
  throw new Error(`MinIO at ${endpoint} did not come up${exited ? ' (it exited)' : ''}:\n${tail}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
