import { readJson } from '../../store/json-doc.ts';
import type { ObjectInfo, ObjectStore } from '../../store/object-store.ts';
import { type Digest, type DigestAlgorithm, keys, parseDigest } from './names.ts';
import type { OciServices } from './services.ts';
import type { BlobPointer } from './storage/blobs.ts';
import type { UploadState } from './storage/uploads.ts';

export interface GcReport {
  expiredUploads: number;
  deletedManifests: number;
  deletedLinks: number;
  deletedBlobs: number;
  deletedData: number;
  bytesFreed: number;
}

export interface Maintenance {
  runOnce(now?: number): Promise<GcReport>;
  stop(): void;
}

/**
 * Online garbage collection, safe to run on every replica at once (each step is idempotent):
 * 1. upload sessions idle longer than `uploadExpiryHours` are discarded with their bytes;
 * 2. per repository, manifests reachable from no tag (directly, through an index, or as a referrer
 *    of a kept manifest) are deleted, and blob links no kept manifest uses are removed;
 * 3. blobs no repository links any more are deleted, then any blob data no pointer names.
 * Nothing younger than `gc.graceHours` is touched, so a push in progress (blobs first, manifest
 * last) never loses what it uploaded.
 */
export function startMaintenance(services: OciServices): Maintenance {
  const { settings, logger } = services;
  let running: Promise<GcReport> | null = null;
  const runOnce = (now = Date.now()) => {
    running ??= collect(services, now).finally(() => {
      running = null;
    });
    return running;
  };
  let timer: NodeJS.Timeout | null = null;
  if (settings.gc.enabled) {
    timer = setInterval(() => {
      runOnce().then(
        (report) => logger.info({ gc: report }, 'OCI garbage collection done'),
        (error: unknown) => logger.error({ err: error }, 'OCI garbage collection failed'),
      );
    }, settings.gc.intervalMinutes * 60_000);
    timer.unref();
  }
  return {
    runOnce,
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}

async function collect(services: OciServices, now: number): Promise<GcReport> {
  const { store, settings } = services;
  const report: GcReport = {
    expiredUploads: 0,
    deletedManifests: 0,
    deletedLinks: 0,
    deletedBlobs: 0,
    deletedData: 0,
    bytesFreed: 0,
  };
  const graceMs = settings.gc.graceHours * 3_600_000;
  const old = (info: ObjectInfo) => now - info.lastModified.getTime() > graceMs;

  // 1. Abandoned uploads.
  const liveUploadKeys = new Set<string>();
  for (const info of await listObjects(store, keys.uploadsPrefix)) {
    const state = (await readJson<UploadState>(store, info.key))?.value;
    if (!state) continue;
    if (now - Date.parse(state.updatedAt) > settings.uploadExpiryHours * 3_600_000) {
      await services.uploads.discard(state);
      report.expiredUploads++;
    } else {
      liveUploadKeys.add(`${keys.dataPrefix}${state.id}/`);
    }
  }

  // 2. Untagged manifests and unused links, repository by repository.
  for (const repository of await services.repositories.names()) {
    const kept = new Set<string>();
    const manifestInfos = await listObjects(store, keys.manifestsPrefix(repository));
    const documents = new Map<string, { info: ObjectInfo; document: Record<string, unknown> }>();
    for (const info of manifestInfos) {
      const digest = digestFromKey(info.key.slice(keys.manifestsPrefix(repository).length));
      if (!digest) continue;
      const manifest = await services.manifests.get(repository, digest.text);
      if (!manifest) continue;
      try {
        documents.set(digest.text, { info, document: JSON.parse(manifest.body.toString('utf8')) });
      } catch {
        documents.set(digest.text, { info, document: {} });
      }
    }
    const queue: string[] = [];
    for (const tag of await services.manifests.tags(repository)) {
      const digest = await services.manifests.resolve(repository, tag);
      if (digest) queue.push(digest.text);
    }
    // Young manifests are kept (a push may be about to tag them), with what they reference.
    for (const [digest, { info }] of documents) if (!old(info)) queue.push(digest);
    const visit = () => {
      while (queue.length > 0) {
        const digest = queue.pop() as string;
        if (kept.has(digest)) continue;
        kept.add(digest);
        const document = documents.get(digest)?.document;
        for (const child of (document?.manifests as { digest?: string }[] | undefined) ?? []) {
          if (child.digest) queue.push(child.digest);
        }
      }
    };
    visit();
    // Referrers of kept manifests are kept too (signatures, SBOMs), until nothing changes.
    let grew = true;
    while (grew) {
      grew = false;
      for (const [digest, { document }] of documents) {
        const subject = (document.subject as { digest?: string } | undefined)?.digest;
        if (!kept.has(digest) && subject && kept.has(subject)) {
          queue.push(digest);
          visit();
          grew = true;
        }
      }
    }
    const usedBlobs = new Set<string>();
    for (const [digest, { document }] of documents) {
      if (!kept.has(digest)) {
        const parsed = parseDigest(digest);
        if (parsed && (await services.manifests.deleteManifest(repository, parsed)))
          report.deletedManifests++;
        continue;
      }
      const config = document.config as { digest?: string } | undefined;
      if (config?.digest) usedBlobs.add(config.digest);
      for (const layer of (document.layers as { digest?: string }[] | undefined) ?? []) {
        if (layer.digest) usedBlobs.add(layer.digest);
      }
    }
    for (const info of await listObjects(store, keys.linksPrefix(repository))) {
      const digest = digestFromKey(info.key.slice(keys.linksPrefix(repository).length));
      if (!digest || usedBlobs.has(digest.text) || !old(info)) continue;
      await services.blobs.unlink(repository, digest);
      report.deletedLinks++;
    }
  }

  // 3. Blobs nobody links, then data no pointer names.
  const referencedData = new Set<string>();
  for (const info of await listObjects(store, keys.blobsPrefix)) {
    const digest = digestFromKey(info.key.slice(keys.blobsPrefix.length));
    const pointer = (await readJson<BlobPointer>(store, info.key))?.value;
    if (!digest || !pointer) continue;
    const linked = (await services.blobs.repositoriesWith(digest, 1)).length > 0;
    if (linked || !old(info)) {
      referencedData.add(pointer.dataKey);
      continue;
    }
    await store.delete(info.key);
    // A mount may have linked it between the check and the delete: put the pointer back then.
    if ((await services.blobs.repositoriesWith(digest, 1)).length > 0) {
      await store.put(info.key, JSON.stringify(pointer), { contentType: 'application/json' });
      referencedData.add(pointer.dataKey);
      continue;
    }
    report.deletedBlobs++;
  }
  for (const info of await listObjects(store, keys.dataPrefix)) {
    if (referencedData.has(info.key) || !old(info)) continue;
    const uploadPrefix = info.key.slice(0, info.key.lastIndexOf('/') + 1);
    if (liveUploadKeys.has(uploadPrefix)) continue;
    // Re-read: a pointer to this data may have been committed since the scan above.
    if (await isPointedTo(services, info.key)) continue;
    await store.delete(info.key);
    report.deletedData++;
    report.bytesFreed += info.size;
  }
  return report;
}

/** The expensive, rare check before deleting data: does any pointer name it now? */
async function isPointedTo(services: OciServices, dataKey: string): Promise<boolean> {
  for (const info of await listObjects(services.store, keys.blobsPrefix)) {
    const pointer = (await readJson<BlobPointer>(services.store, info.key))?.value;
    if (pointer?.dataKey === dataKey) return true;
  }
  return false;
}

function digestFromKey(rest: string): Digest | null {
  const [algorithm, hex] = rest.split('/');
  if (!algorithm || !hex) return null;
  return parseDigest(`${algorithm as DigestAlgorithm}:${hex}`);
}

export async function listObjects(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const objects: ObjectInfo[] = [];
  let continuationToken: string | undefined;
  do {
    const page = await store.list({ prefix, ...(continuationToken ? { continuationToken } : {}) });
    objects.push(...page.objects);
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return objects;
}
