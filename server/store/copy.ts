import type { ObjectInfo, ObjectStore } from './object-store.ts';

/**
 * Copies every object of one store into another (a volume's fs store into S3, when a quick start
 * outgrows its single replica). Each object keeps its bytes and its content type, the only metadata
 * the ObjectStore keeps besides what a backend assigns itself (ETag, last-modified time).
 *
 * Idempotent and resumable: an object already at the destination with the same size and written
 * after the source's last change is skipped, so a run that was interrupted, or run again after the
 * servers wrote a little more, copies only what is missing or changed. A put is atomic on both
 * drivers, so an interrupted copy never leaves a partial object behind. Nothing is deleted at the
 * destination.
 */
export interface CopyReport {
  copied: number;
  skipped: number;
  bytes: number;
}

export interface CopyOptions {
  /** Objects copied side by side (each streamed; big ones go up as multipart uploads on S3). */
  concurrency?: number;
  /** Called after each object, for progress output. */
  onObject?: (key: string, outcome: 'copied' | 'skipped', size: number) => void;
}

export async function copyStore(
  from: ObjectStore,
  to: ObjectStore,
  options: CopyOptions = {},
): Promise<CopyReport> {
  const report: CopyReport = { copied: 0, skipped: 0, bytes: 0 };
  const concurrency = options.concurrency ?? 8;
  // Both stores list in ascending key order: walking the destination's listing beside the source's
  // finds what is there already in one pass of list pages, not one HEAD request per object.
  const destination = objectsOf(to)[Symbol.asyncIterator]();
  let there = await destination.next();
  const existing = async (key: string): Promise<ObjectInfo | undefined> => {
    while (!there.done && there.value.key < key) there = await destination.next();
    return !there.done && there.value.key === key ? there.value : undefined;
  };
  let continuationToken: string | undefined;
  do {
    // One page at a time: a store of millions of objects is never listed into memory whole.
    const page = await from.list({ maxKeys: 1000, ...(continuationToken ? { continuationToken } : {}) });
    const queue: ObjectInfo[] = [];
    for (const object of page.objects) {
      if (isCurrent(object, await existing(object.key))) {
        report.skipped++;
        options.onObject?.(object.key, 'skipped', object.size);
      } else queue.push(object);
    }
    const worker = async () => {
      for (let object = queue.shift(); object; object = queue.shift()) {
        const copied = await copyObject(from, to, object.key);
        if (copied) {
          report.copied++;
          report.bytes += object.size;
        } else report.skipped++;
        options.onObject?.(object.key, copied ? 'copied' : 'skipped', object.size);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return report;
}

async function* objectsOf(store: ObjectStore): AsyncGenerator<ObjectInfo> {
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ maxKeys: 1000, ...(continuationToken ? { continuationToken } : {}) });
    yield* page.objects;
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
}

/** The destination holds this version already: same size, written after the source last changed. */
function isCurrent(source: ObjectInfo, copy: ObjectInfo | undefined): boolean {
  return (
    copy !== undefined &&
    copy.size === source.size &&
    copy.lastModified.getTime() >= source.lastModified.getTime()
  );
}

async function copyObject(from: ObjectStore, to: ObjectStore, key: string): Promise<boolean> {
  const object = await from.get(key);
  // Deleted since the listing (a server still running): nothing to copy.
  if (!object) return false;
  await to.put(key, object.body, {
    contentLength: object.size,
    ...(object.contentType ? { contentType: object.contentType } : {}),
  });
  return true;
}
