/**
 * `node dist/server/tools/copy-store.js --from fs:/var/lib/wharf --to s3://bucket/prefix/`: copies
 * every object of one store into another (server/store/copy.ts), e.g. a volume-mode quick start's
 * fs store into the bucket its S3 mode will use. Run it with the servers stopped (or once while
 * they run and again after stopping them: a second run copies only what changed). S3 settings come
 * from the same environment variables the server reads: WHARF_S3_ENDPOINT, WHARF_S3_REGION,
 * WHARF_S3_FORCE_PATH_STYLE, WHARF_S3_ACCESS_KEY_ID, WHARF_S3_SECRET_ACCESS_KEY (else the AWS
 * SDK's default chain). docs/operator.md walks through the move.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { S3Config } from '../config/types.ts';
import { copyStore } from '../store/copy.ts';
import { FsObjectStore } from '../store/fs-store.ts';
import type { ObjectStore } from '../store/object-store.ts';

const USAGE =
  'usage: copy-store --from <fs:DIR | s3://BUCKET[/PREFIX/]> --to <fs:DIR | s3://BUCKET[/PREFIX/]> [--concurrency N (8)] [--quiet]';

class UsageError extends Error {}

/** `fs:/data` or `s3://bucket/some/prefix/` (the prefix as the server's store.s3.prefix: ending in /). */
export function parseStoreUrl(url: string, env: NodeJS.ProcessEnv): { fs: string } | { s3: S3Config } {
  if (url.startsWith('fs:')) {
    const dir = url.slice('fs:'.length);
    if (!dir) throw new UsageError('fs: needs a directory, e.g. fs:/var/lib/wharf');
    return { fs: dir };
  }
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!match) throw new UsageError(`${url}: expected fs:DIR or s3://BUCKET[/PREFIX/]`);
  const prefix = match[2] ?? '';
  if (prefix && !/^([^/]+\/)+$/.test(prefix))
    throw new UsageError(`${url}: the prefix must be segments each ending in "/", e.g. s3://bucket/wharf/`);
  return {
    s3: {
      bucket: match[1]!,
      prefix,
      region: env.WHARF_S3_REGION || 'us-east-1',
      forcePathStyle: env.WHARF_S3_FORCE_PATH_STYLE === 'true',
      presignDownloads: false,
      ...(env.WHARF_S3_ENDPOINT ? { endpoint: env.WHARF_S3_ENDPOINT } : {}),
      ...(env.WHARF_S3_ACCESS_KEY_ID && env.WHARF_S3_SECRET_ACCESS_KEY
        ? { accessKeyId: env.WHARF_S3_ACCESS_KEY_ID, secretAccessKey: env.WHARF_S3_SECRET_ACCESS_KEY }
        : {}),
    },
  };
}

async function openStore(url: string, env: NodeJS.ProcessEnv): Promise<ObjectStore> {
  const target = parseStoreUrl(url, env);
  if ('fs' in target) return FsObjectStore.open(target.fs);
  // Loaded only for s3, as in the server.
  const { S3ObjectStore } = await import('../store/s3-store.ts');
  return S3ObjectStore.open(target.s3, pino({ level: 'silent' }));
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let from: ObjectStore | undefined;
  let to: ObjectStore | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        concurrency: { type: 'string', default: '8' },
        quiet: { type: 'boolean', default: false },
      },
    });
    if (!values.from || !values.to) throw new UsageError(USAGE);
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
      throw new UsageError('--concurrency must be an integer from 1 to 64');
    from = await openStore(values.from, env);
    to = await openStore(values.to, env);
    const started = Date.now();
    const report = await copyStore(from, to, {
      concurrency,
      ...(values.quiet ? {} : { onObject: (key, outcome) => process.stdout.write(`${outcome} ${key}\n`) }),
    });
    process.stdout.write(
      `${JSON.stringify({ ...report, seconds: (Date.now() - started) / 1000, from: values.from, to: values.to })}\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`copy-store: ${(error as Error).message}\n`);
    return error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
      ? 2
      : 1;
  } finally {
    await from?.close();
    await to?.close();
  }
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2), process.env);
