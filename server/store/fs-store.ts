import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, type Dirent } from 'node:fs';
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { acquireFileLock, type Release, tryAcquireFileLock } from './file-lock.ts';
import { writeToFile } from './file-sink.ts';
import {
  assertValidKey,
  type Body,
  type CompletedPart,
  type GetOptions,
  type GetResult,
  InvalidRangeError,
  type ListOptions,
  type ListResult,
  MAX_PARTS,
  MIN_PART_SIZE,
  NoSuchUploadError,
  type ObjectInfo,
  type ObjectStore,
  PreconditionFailedError,
  type PutOptions,
  type PutResult,
} from './object-store.ts';
import { copyFileRange } from './pooled-copy.ts';
import { BodyLengthError } from './stream-parts.ts';

/**
 * The embedded store: objects are files under `<root>/objects`, written to `<root>/tmp` first and
 * renamed into place, so a crash never leaves a partial object visible. Leaf files carry a `%obj`
 * suffix (which URI-encoding never produces), so `a/b` and `a/b/c` can both exist as on S3 (though
 * MinIO then leaves `a/b/c` out of listings: see object-store.ts).
 *
 * Conditional writes hold a per-key lock file (O_EXCL) while they compare and rename, which makes
 * them safe between processes sharing the directory too; a lock whose holder died is freed at once
 * (file-lock.ts).
 */
export class FsObjectStore implements ObjectStore {
  readonly kind = 'fs';
  readonly root: string;
  private readonly objectsDir: string;
  private readonly tmpDir: string;
  private readonly uploadsDir: string;
  private readonly locksDir: string;
  /** Background flushes of multipart `data` files in progress, by path. */
  private readonly flushes = new Map<string, Promise<void>>();

  private constructor(root: string) {
    this.root = path.resolve(root);
    this.objectsDir = path.join(this.root, 'objects');
    this.tmpDir = path.join(this.root, 'tmp');
    this.uploadsDir = path.join(this.root, 'uploads');
    this.locksDir = path.join(this.root, 'locks');
  }

  static async open(root: string): Promise<FsObjectStore> {
    const store = new FsObjectStore(root);
    for (const dir of [store.objectsDir, store.tmpDir, store.uploadsDir, store.locksDir]) {
      await mkdir(dir, { recursive: true });
    }
    // Temporary files are only ever half-written objects of a process that died: drop them.
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    return store;
  }

  private objectPath(key: string): string {
    assertValidKey(key);
    const segments = key.split('/').map(encodeURIComponent);
    segments[segments.length - 1] += LEAF_SUFFIX;
    return path.join(this.objectsDir, ...segments);
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<PutResult> {
    const target = this.objectPath(key);
    const tmp = path.join(this.tmpDir, randomUUID());
    try {
      await this.writeFileSynced(tmp, body, options.contentLength, options.durable ?? true);
      return await this.commit(key, tmp, target, options);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Writes a temporary file and flushes it to disk, so a rename never publishes unsynced data
   * (unless the caller asked for `durable: false`).
   */
  private async writeFileSynced(
    file: string,
    body: Body,
    expectedLength?: number,
    durable = true,
  ): Promise<void> {
    const size = await writeToFile(file, body, { flags: 'w', durable });
    if (expectedLength !== undefined && size !== expectedLength) {
      throw new BodyLengthError(size, expectedLength, true);
    }
  }

  /** Moves a finished temporary file into place, checking the write's condition under the key lock. */
  private async commit(key: string, tmp: string, target: string, options: PutOptions): Promise<PutResult> {
    const etag = etagOf(await stat(tmp, { bigint: true }));
    const conditional = options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
    const release = conditional ? await this.lock(key) : undefined;
    try {
      if (conditional) {
        const current = await stat(target, { bigint: true }).catch(ignoreNotFound);
        if (options.ifNoneMatch === '*' && current) throw new PreconditionFailedError(key);
        if (options.ifMatch !== undefined && (!current || etagOf(current) !== options.ifMatch)) {
          throw new PreconditionFailedError(key);
        }
      }
      await this.renameCreatingParents(tmp, target);
      return { etag };
    } finally {
      await release?.();
    }
  }

  private async renameCreatingParents(from: string, to: string): Promise<void> {
    // A concurrent delete may remove an emptied parent between mkdir and rename: try again.
    for (let attempt = 0; ; attempt++) {
      await mkdir(path.dirname(to), { recursive: true });
      try {
        await rename(from, to);
        return;
      } catch (error) {
        if (!isNotFound(error) || attempt >= 5) throw error;
      }
    }
  }

  /** Waits for the lock of a key (or another name); see file-lock.ts for what frees a dead holder's. */
  private lock(name: string): Promise<Release> {
    return acquireFileLock(this.lockPath(name));
  }

  /** Takes a lock without waiting: `null` when a live holder has it. */
  private tryLock(name: string): Promise<Release | null> {
    return tryAcquireFileLock(this.lockPath(name));
  }

  private lockPath(name: string): string {
    return path.join(this.locksDir, createHash('sha256').update(name).digest('hex'));
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult | null> {
    const handle = await open(this.objectPath(key), 'r').catch(ignoreNotFound);
    if (!handle) return null;
    try {
      const info = await handle.stat({ bigint: true });
      if (options.ifNoneMatch !== undefined && options.ifNoneMatch === etagOf(info)) {
        await handle.close();
        return { ...this.info(key, info), body: Readable.from([]), notModified: true };
      }
      const size = Number(info.size);
      let start = 0;
      let end = size - 1;
      if (options.range) {
        start = options.range.start;
        end = Math.min(options.range.end ?? size - 1, size - 1);
        if (start >= size || start < 0 || end < start) throw new InvalidRangeError(key, size);
      }
      // The stream is made only when asked for: a download through copyTo never needs one.
      let body: Readable | undefined;
      const result: GetResult = {
        ...this.info(key, info),
        get body() {
          body ??= handle.createReadStream(
            size === 0 ? { highWaterMark: 1 } : { start, end, highWaterMark: readBuffer(end - start + 1) },
          );
          return body;
        },
        copyTo: (destination) => copyFileRange(handle, start, end, destination),
      };
      if (options.range) result.range = { start, end };
      return result;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const info = await stat(this.objectPath(key), { bigint: true }).catch(ignoreNotFound);
    return info ? this.info(key, info) : null;
  }

  private info(key: string, stats: BigIntStats): ObjectInfo {
    return {
      key,
      size: Number(stats.size),
      etag: etagOf(stats),
      lastModified: new Date(Number(stats.mtimeMs)),
    };
  }

  async delete(key: string): Promise<void> {
    const file = this.objectPath(key);
    await unlink(file).catch(ignoreNotFound);
    // Remove emptied parent directories so that listings do not show prefixes with nothing under them.
    let dir = path.dirname(file);
    while (dir.startsWith(this.objectsDir) && dir !== this.objectsDir) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
      dir = path.dirname(dir);
    }
  }

  async list(options: ListOptions = {}): Promise<ListResult> {
    const prefix = options.prefix ?? '';
    const maxKeys = Math.min(Math.max(options.maxKeys ?? 1000, 1), 1000);
    const after = options.continuationToken
      ? Buffer.from(options.continuationToken, 'base64url').toString()
      : (options.startAfter ?? '');
    const result: ListResult = { objects: [], prefixes: [] };
    let count = 0;
    let last = '';
    for await (const entry of this.walk(this.objectsDir, '', prefix, after, options.delimiter === '/')) {
      if (count === maxKeys) {
        result.nextContinuationToken = Buffer.from(last).toString('base64url');
        break;
      }
      if (typeof entry === 'string') result.prefixes.push(entry);
      else result.objects.push(entry);
      last = typeof entry === 'string' ? entry : entry.key;
      count++;
    }
    return result;
  }

  /** Yields objects (and, with a delimiter, folded prefixes) in key order, all after `after`. */
  private async *walk(
    dir: string,
    dirKey: string,
    prefix: string,
    after: string,
    fold: boolean,
  ): AsyncGenerator<ObjectInfo | string> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    const named = entries
      .map((entry) => {
        if (entry.isDirectory())
          return { entry, key: `${dirKey}${decodeURIComponent(entry.name)}/`, dir: true };
        if (entry.isFile() && entry.name.endsWith(LEAF_SUFFIX)) {
          return {
            entry,
            key: dirKey + decodeURIComponent(entry.name.slice(0, -LEAF_SUFFIX.length)),
            dir: false,
          };
        }
        return null;
      })
      .filter((x) => x !== null)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

    for (const { entry, key, dir: isDir } of named) {
      const full = path.join(dir, entry.name);
      if (!isDir) {
        if (key.startsWith(prefix) && key > after) {
          const info = await stat(full, { bigint: true }).catch(ignoreNotFound);
          if (info) yield this.info(key, info);
        }
        continue;
      }
      // Everything under this directory starts with `key`; skip it when the page is already past it.
      if (after >= key && !after.startsWith(key)) continue;
      if (prefix.startsWith(key)) {
        yield* this.walk(full, key, prefix, after, fold);
      } else if (key.startsWith(prefix)) {
        if (fold) {
          if (!after.startsWith(key) && key > after) yield key;
        } else {
          yield* this.walk(full, key, prefix, after, fold);
        }
      }
    }
  }

  async createMultipart(key: string): Promise<string> {
    assertValidKey(key);
    const uploadId = randomUUID();
    await mkdir(path.join(this.uploadsDir, uploadId), { recursive: true });
    await writeFile(path.join(this.uploadsDir, uploadId, 'key'), key);
    return uploadId;
  }

  private async uploadDir(key: string, uploadId: string): Promise<string> {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new NoSuchUploadError(uploadId);
    const dir = path.join(this.uploadsDir, uploadId);
    const owner = await readFile(path.join(dir, 'key'), 'utf8').catch(ignoreNotFound);
    if (owner !== key) throw new NoSuchUploadError(uploadId);
    return dir;
  }

  /**
   * Parts arriving in order (the usual case: a client streaming chunks) are appended to one `data`
   * file in the upload's directory, so completion publishes that file by rename instead of copying
   * every byte a second time. A part out of order, a re-uploaded part, or a part written while
   * another process appends goes to its own `part-N` file, and completion copies what it must.
   */
  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<PutResult> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
      throw new Error(`part number must be 1..${MAX_PARTS}`);
    }
    const dir = await this.uploadDir(key, uploadId);
    const release = await this.tryLock(`multipart:${uploadId}`);
    if (release) {
      try {
        const appended = await readAppended(dir);
        const last = appended.at(-1);
        if (partNumber === (last?.partNumber ?? 0) + 1) {
          const etag = await this.appendPart(dir, appended, partNumber, body, length);
          await rm(path.join(dir, `part-${partNumber}`), { force: true });
          return { etag };
        }
        // A re-upload of an appended part: forget the old bytes (the last ones can be cut off).
        const index = appended.findIndex((part) => part.partNumber === partNumber);
        if (index >= 0) {
          const [dropped] = appended.splice(index, 1);
          if (index === appended.length) await truncate(path.join(dir, 'data'), dropped!.offset);
          await writeAppended(dir, appended);
        }
      } finally {
        await release();
      }
    }
    const tmp = path.join(this.tmpDir, randomUUID());
    try {
      await this.writeFileSynced(tmp, body, length);
      const etag = etagOf(await stat(tmp, { bigint: true }));
      await rename(tmp, path.join(dir, `part-${partNumber}`));
      return { etag };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Appends one part to the upload's `data` file and records (durably) where it lies. */
  private async appendPart(
    dir: string,
    appended: AppendedPart[],
    partNumber: number,
    body: Body,
    length?: number,
  ): Promise<string> {
    const data = path.join(dir, 'data');
    const last = appended.at(-1);
    const offset = last ? last.offset + last.size : 0;
    // Bytes past the recorded parts are the remains of a failed append: cut them off first.
    const handle = await open(data, 'a');
    try {
      await handle.truncate(offset);
    } finally {
      await handle.close();
    }
    try {
      // Not synced here: completeMultipart syncs the whole file once before publishing it. A part
      // lost to a power cut before that is caught there (size) or by the digest check above us.
      await writeToFile(data, body, { flags: 'a', durable: false });
      const size = Number((await stat(data)).size) - offset;
      if (length !== undefined && size !== length) throw new BodyLengthError(size, length, true);
      const etag = `"${randomBytes(16).toString('hex')}"`;
      appended.push({ partNumber, offset, size, etag });
      await writeAppended(dir, appended);
      this.flushInBackground(data);
      return etag;
    } catch (error) {
      await truncate(data, offset).catch(() => undefined);
      throw error;
    }
  }

  async completeMultipart(key: string, uploadId: string, parts: CompletedPart[]): Promise<PutResult> {
    const dir = await this.uploadDir(key, uploadId);
    if (parts.length === 0) throw new Error('a multipart upload needs at least one part');
    // Waits for an append in progress: its part may be one of those listed.
    const release = await this.lock(`multipart:${uploadId}`);
    try {
      const appended = await readAppended(dir);
      const data = path.join(dir, 'data');
      await this.flushes.get(data);
      const sources: { file: string; offset: number; size: number }[] = [];
      for (const [index, part] of parts.entries()) {
        if (index > 0 && part.partNumber <= parts[index - 1]!.partNumber) {
          throw new Error('parts must be listed in ascending part-number order');
        }
        const inData = appended.find((a) => a.partNumber === part.partNumber && a.etag === part.etag);
        let source = inData ? { file: data, offset: inData.offset, size: inData.size } : null;
        if (!source) {
          const file = path.join(dir, `part-${part.partNumber}`);
          const info = await stat(file, { bigint: true }).catch(ignoreNotFound);
          if (!info || etagOf(info) !== part.etag)
            throw new Error(`part ${part.partNumber} is missing or changed`);
          source = { file, offset: 0, size: Number(info.size) };
        }
        if (index < parts.length - 1 && source.size < MIN_PART_SIZE) {
          throw new Error(`part ${part.partNumber} is smaller than the ${MIN_PART_SIZE}-byte minimum`);
        }
        sources.push(source);
      }
      // The leading parts that already lie in `data`, in order from its start, stay where they are.
      let kept = 0;
      let keptBytes = 0;
      while (kept < sources.length && sources[kept]!.file === data && sources[kept]!.offset === keptBytes) {
        keptBytes += sources[kept]!.size;
        kept++;
      }
      // Cutting `data` short must not lose bytes a later listed part still needs: then copy it all.
      if (sources.slice(kept).some((source) => source.file === data)) kept = 0;
      const target = kept > 0 ? data : path.join(this.tmpDir, randomUUID());
      try {
        if (kept > 0) {
          // Parts are appended without fsync: after a power cut the file can be shorter than its
          // record says. Refuse then, rather than let the cut below extend it with zeros.
          const { size } = await stat(data);
          if (size < keptBytes)
            throw new Error(`multipart data is ${size} bytes, its parts need ${keptBytes}`);
          // Record first what survives the cut, so a crash mid-completion cannot leave a part
          // listed at bytes that the appended tail has overwritten.
          await writeAppended(
            dir,
            appended.filter((part) => part.offset + part.size <= keptBytes),
          );
          await truncate(data, keptBytes);
        }
        async function* rest() {
          for (const { file, offset, size } of sources.slice(kept)) {
            if (size > 0)
              yield* createReadStream(file, {
                start: offset,
                end: offset + size - 1,
                highWaterMark: READ_CHUNK,
              });
          }
        }
        // Always through an fsync, also when nothing is appended: the truncation must be durable too.
        await writeToFile(target, rest(), { flags: 'a', durable: true });
        const result = await this.commit(key, target, this.objectPath(key), {});
        await rm(dir, { recursive: true, force: true });
        return result;
      } finally {
        if (kept === 0) await rm(target, { force: true });
      }
    } finally {
      await release();
    }
  }

  /**
   * Starts writing an appended `data` file's dirty pages to disk without anyone waiting, so that
   * the sync at completion has little left to do. Linux would otherwise keep a whole upload dirty
   * in memory (the default limits are a share of RAM) and write it all while the client waits for
   * its final PUT. One flush per file at a time: the next append starts the next one.
   */
  private flushInBackground(file: string): void {
    if (this.flushes.has(file)) return;
    const flush = (async () => {
      const handle = await open(file, 'r');
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    })()
      .catch(() => undefined) // only an early start: completion syncs and reports errors itself
      .finally(() => this.flushes.delete(file));
    this.flushes.set(file, flush);
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    const dir = await this.uploadDir(key, uploadId).catch(() => null);
    if (dir) await rm(dir, { recursive: true, force: true });
  }

  async presignGet(): Promise<string | null> {
    return null;
  }

  async ping(): Promise<void> {
    await stat(this.objectsDir);
  }

  async close(): Promise<void> {}
}

/** A part stored inside a multipart upload's `data` file. */
interface AppendedPart {
  partNumber: number;
  offset: number;
  size: number;
  etag: string;
}

async function readAppended(dir: string): Promise<AppendedPart[]> {
  const text = await readFile(path.join(dir, 'appended.json'), 'utf8').catch(ignoreNotFound);
  return text ? (JSON.parse(text) as AppendedPart[]) : [];
}

/** Replaces the record atomically: a crash leaves the old list or the new one. */
async function writeAppended(dir: string, appended: AppendedPart[]): Promise<void> {
  const tmp = path.join(dir, `appended.${randomUUID()}.tmp`);
  await writeFile(tmp, JSON.stringify(appended), { flush: true });
  await rename(tmp, path.join(dir, 'appended.json'));
}

type BigIntStats = Awaited<ReturnType<typeof stat>> & { ino: bigint; size: bigint; mtimeNs: bigint };

const LEAF_SUFFIX = '%obj';
const READ_CHUNK = 1024 * 1024;

/** Big reads use 1 MiB buffers; a small JSON document should not allocate one. */
function readBuffer(bytes: number): number {
  return Math.max(1, Math.min(bytes, READ_CHUNK));
}

/** Inode, size and nanosecond mtime change on every rename-into-place, so they identify a version. */
function etagOf(stats: { ino: bigint | number; size: bigint | number; mtimeNs?: bigint }): string {
  const id = `${stats.ino}:${stats.size}:${stats.mtimeNs ?? 0n}`;
  return `"${createHash('sha256').update(id).digest('hex').slice(0, 32)}"`;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function ignoreNotFound(error: unknown): null {
  if (isNotFound(error)) return null;
  throw error;
}
