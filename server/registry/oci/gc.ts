import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readJson } from '../../store/json-doc.ts';
import { type HeldLease, withLease } from '../../store/lease.ts';
import { listAllObjects, type ObjectInfo } from '../../store/object-store.ts';
import {
  type Digest,
  type DigestAlgorithm,
  decodeRepository,
  keys,
  namespaceOf,
  parseDigest,
} from './names.ts';
import type { OciServices } from './services.ts';
import type { OciProxySettings } from './settings.ts';
import { type ManifestActivity, PULL_RESOLUTION_MS } from './storage/activity.ts';
import type { BlobPointer } from './storage/blobs.ts';
import type { UploadState } from './storage/uploads.ts';

/** What a run deleted or, in a dry run, would delete. */
export interface GcDeletions {
  /** Upload session ids. */
  uploads: string[];
  /** Tags of proxy caches evicted (not pulled within the proxy's retention, or over its quota). */
  tags: { repository: string; tag: string }[];
  manifests: { repository: string; digest: string }[];
  links: { repository: string; digest: string }[];
  blobs: string[];
  /** Store keys of blob data. */
  data: string[];
}

export interface GcReport {
  dryRun: boolean;
  /** Set when another process held the GC lease: this run did nothing. */
  skipped?: { holder: string; until: string };
  expiredUploads: number;
  evictedTags: number;
  deletedManifests: number;
  deletedLinks: number;
  deletedBlobs: number;
  deletedData: number;
  /** Bytes of blob data and manifests deleted. */
  bytesFreed: number;
  /** Manifests no tag reaches that the retention rules (or `deleteUntagged: false`) kept. */
  retainedUntagged: number;
  deletions: GcDeletions;
}

export interface Maintenance {
  /** One collection at `now` (tests move it); a dry run deletes nothing and reports what it would. */
  runOnce(now?: number, options?: { dryRun?: boolean }): Promise<GcReport>;
  stop(): void;
}

/** How long the GC lease lasts without renewal; the holder renews it every third of that. */
const LEASE_MS = 2 * 60_000;

/**
 * Online garbage collection, by one process at a time per store (a lease in the store):
 * 1. upload sessions idle longer than `uploadExpiryHours` are discarded with their bytes;
 * 2. per repository, manifests that no tag reaches and that the retention rules do not keep are
 *    deleted (only with `gc.deleteUntagged`), and blob links no kept manifest uses are removed;
 * 3. blobs no repository links any more are deleted, then any blob data no pointer names.
 *
 * A manifest no tag reaches is kept while it was pushed, lost its last tag, or was pulled by digest
 * within `untaggedRetentionHours`, and while pulls have been recorded for less than that; whatever a
 * kept manifest reaches (an index's children, referrers) is kept with it. Nothing younger than
 * `gc.graceHours` is touched, so a push in progress (blobs first, manifest last) never loses what it
 * uploaded. A run first plans everything, then deletes, checking each item again just before (a
 * manifest pushed again meanwhile is left, and so is everything it keeps); a dry run returns the plan.
 */
export function startMaintenance(services: OciServices): Maintenance {
  const { settings } = services;
  const running = new Map<boolean, Promise<GcReport>>();
  const holder = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  const runOnce = (now = Date.now(), { dryRun = false }: { dryRun?: boolean } = {}) => {
    let run = running.get(dryRun);
    if (!run) {
      run = collectAndReport(services, holder, now, dryRun).finally(() => running.delete(dryRun));
      running.set(dryRun, run);
    }
    return run;
  };
  let timer: NodeJS.Timeout | null = null;
  if (settings.gc.enabled) {
    timer = setInterval(() => {
      runOnce(Date.now(), { dryRun: settings.gc.dryRun }).catch(() => undefined); // logged in the run
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

/** A run with its one log line and its metrics. */
async function collectAndReport(
  services: OciServices,
  holder: string,
  now: number,
  dryRun: boolean,
): Promise<GcReport> {
  const { logger, metrics } = services;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    // This replica's own recent pulls count before anything is judged.
    await services.pulls.flush();
    let report: GcReport;
    if (dryRun) {
      report = reportOf(await plan(services, now), true);
    } else {
      const outcome = await withLease(
        services.store,
        keys.gcLease,
        { holder, durationMs: LEASE_MS },
        async (lease) => execute(services, await plan(services, now), now, lease),
      );
      report = outcome.ran
        ? outcome.value
        : {
            ...reportOf(emptyPlan(), false),
            skipped: { holder: outcome.holder, until: outcome.expiresAt.toISOString() },
          };
    }
    const result = report.skipped ? 'skipped' : dryRun ? 'dry_run' : 'completed';
    metrics.gcRun('oci', result, seconds());
    if (report.skipped) {
      logger.info(
        { gc: { skipped: report.skipped } },
        'OCI garbage collection skipped: another process holds the lease',
      );
    } else {
      const { deletions, ...counts } = report;
      logger.info(
        { gc: { ...counts, seconds: seconds(), ...(dryRun ? { wouldDelete: abbreviated(deletions) } : {}) } },
        dryRun ? 'OCI garbage collection dry run: nothing deleted' : 'OCI garbage collection done',
      );
    }
    return report;
  } catch (error) {
    metrics.gcRun('oci', 'failed', seconds());
    logger.error({ err: error }, 'OCI garbage collection failed');
    throw error;
  }
}

/** A log line stays a line: at most 20 entries of each kind, and how many more there are. */
function abbreviated(deletions: GcDeletions): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [kind, entries] of Object.entries(deletions) as [string, unknown[]][]) {
    if (entries.length === 0) continue;
    result[kind] = entries.slice(0, 20);
    if (entries.length > 20) result[`${kind}More`] = entries.length - 20;
  }
  return result;
}

interface PlannedManifest {
  repository: string;
  digest: Digest;
  /** The object as planned: a manifest pushed again since then (other ETag or mtime) is left. */
  etag: string;
  lastModified: number;
  size: number;
  subject: Digest | null;
  /** Digests of other planned manifests that keep this one if they stay (parents, its subject). */
  keepers: string[];
  /** Blobs it uses: their links stay if it does. */
  blobs: string[];
}

/** A proxy cache's tag to evict, as planned: left if it moved or was pulled since. */
interface PlannedTag {
  repository: string;
  tag: string;
  digest: string;
  pulledAt: string | null;
}

interface Plan {
  uploads: UploadState[];
  tags: PlannedTag[];
  /** Store keys of manifests whose tags are evicted for a proxy's quota: no retention keeps them. */
  evicted: Set<string>;
  manifests: PlannedManifest[];
  links: { repository: string; digest: Digest }[];
  blobs: { digest: Digest; key: string; pointer: BlobPointer }[];
  data: ObjectInfo[];
  /** Activity records of manifests that no longer exist. */
  staleActivity: string[];
  retainedUntagged: number;
}

function emptyPlan(): Plan {
  return {
    uploads: [],
    tags: [],
    evicted: new Set(),
    manifests: [],
    links: [],
    blobs: [],
    data: [],
    staleActivity: [],
    retainedUntagged: 0,
  };
}

/** Decides everything a run deletes, deleting nothing. */
async function plan(services: OciServices, now: number): Promise<Plan> {
  const { store, settings } = services;
  const result = emptyPlan();
  const graceMs = settings.gc.graceHours * 3_600_000;
  const old = (info: ObjectInfo) => now - info.lastModified.getTime() > graceMs;

  // 1. Abandoned uploads.
  const liveUploadKeys = new Set<string>();
  for (const info of await listAllObjects(store, keys.uploadsPrefix)) {
    const state = (await readJson<UploadState>(store, info.key))?.value;
    if (!state) continue;
    if (now - Date.parse(state.updatedAt) > settings.uploadExpiryHours * 3_600_000)
      result.uploads.push(state);
    else liveUploadKeys.add(`${keys.dataPrefix}${state.id}/`);
  }

  // 2. Proxy caches: tags not pulled within their retention, or beyond their quota, are evicted.
  const repositories = await services.repositories.names();
  const evicted = result.evicted;
  for (const proxy of services.proxies.all()) {
    const inProxy = repositories.filter((name) => namespaceOf(name) === proxy.settings.namespace);
    for (const tag of await planProxyEvictions(services, proxy.settings, inProxy, now, evicted))
      result.tags.push(tag);
  }
  const evictedTags = new Set(result.tags.map((tag) => `${tag.repository}:${tag.tag}`));

  // 3. Untagged manifests and unused links, repository by repository.
  const retention = await retentionRules(services, now, evicted);
  const unlinked = new Set<string>();
  for (const repository of repositories) {
    const planned = await planRepository(services, repository, retention(repository), evictedTags);
    result.manifests.push(...planned.manifests);
    result.staleActivity.push(...planned.staleActivity);
    result.retainedUntagged += planned.retainedUntagged;
    for (const info of await listAllObjects(store, keys.linksPrefix(repository))) {
      const digest = digestFromKey(info.key.slice(keys.linksPrefix(repository).length));
      if (!digest || planned.usedBlobs.has(digest.text) || !old(info)) continue;
      result.links.push({ repository, digest });
      unlinked.add(`${repository}@${digest.text}`);
    }
  }

  // 4. Blobs no repository will link, then data no remaining pointer names.
  const referencedData = new Set<string>();
  for (const info of await listAllObjects(store, keys.blobsPrefix)) {
    const digest = digestFromKey(info.key.slice(keys.blobsPrefix.length));
    const pointer = (await readJson<BlobPointer>(store, info.key))?.value;
    if (!digest || !pointer) continue;
    const refsPrefix = keys.blobRefsPrefix(digest);
    const linkedBy = (await listAllObjects(store, refsPrefix)).map((ref) =>
      decodeRepository(ref.key.slice(refsPrefix.length)),
    );
    const staysLinked = linkedBy.some((repository) => !unlinked.has(`${repository}@${digest.text}`));
    if (staysLinked || !old(info)) referencedData.add(pointer.dataKey);
    else result.blobs.push({ digest, key: info.key, pointer });
  }
  for (const info of await listAllObjects(store, keys.dataPrefix)) {
    if (referencedData.has(info.key) || !old(info)) continue;
    const uploadPrefix = info.key.slice(0, info.key.lastIndexOf('/') + 1);
    if (liveUploadKeys.has(uploadPrefix)) continue;
    result.data.push(info);
  }
  return result;
}

interface RetentionRule {
  now: number;
  /** Nothing younger than this is touched (`gc.graceHours`). */
  graceMs: number;
  /** Whether `gc.deleteUntagged` is on at all. */
  deleteUntagged: boolean;
  /** Whether a manifest no tag reaches stays for its own sake (pushed, untagged or pulled lately). */
  keeps(info: ObjectInfo, activity: ManifestActivity | null): boolean;
}

async function retentionRule(services: OciServices, now: number): Promise<RetentionRule> {
  const { gc } = services.settings;
  const windowMs = gc.untaggedRetentionHours * 3_600_000;
  const pushWindowMs = Math.max(windowMs, gc.graceHours * 3_600_000);
  const within = (iso: string | undefined, ms: number) => iso !== undefined && now - Date.parse(iso) < ms;
  // Pulls before this store recorded them are unknown: until the window is covered, nothing goes.
  const pullHistoryCoversWindow =
    gc.deleteUntagged && now - (await services.activity.pullsRecordedSince()) >= windowMs;
  return {
    now,
    graceMs: gc.graceHours * 3_600_000,
    deleteUntagged: gc.deleteUntagged,
    keeps: (info, activity) =>
      !pullHistoryCoversWindow ||
      now - info.lastModified.getTime() < pushWindowMs ||
      within(activity?.untaggedAt, windowMs) ||
      // A pull is recorded at most once per resolution period: the last one may be that much later.
      within(activity?.pulledAt, windowMs + PULL_RESOLUTION_MS),
  };
}

/** The retention rule of each repository: a proxy's cache goes by last pull, the rest by `gc`. */
async function retentionRules(
  services: OciServices,
  now: number,
  evicted: Set<string>,
): Promise<(repository: string) => RetentionRule> {
  const registry = await retentionRule(services, now);
  const graceMs = services.settings.gc.graceHours * 3_600_000;
  const proxies = new Map(
    services.proxies
      .all()
      .map(({ settings }) => [settings.namespace, proxyRetention(settings, now, graceMs, evicted)]),
  );
  return (repository) => proxies.get(namespaceOf(repository)) ?? registry;
}

/**
 * A proxy's cached manifest can be fetched again: untagged, it goes once unpulled for
 * `retentionHours` (or at once when its tag was evicted for the quota), never younger than grace.
 */
function proxyRetention(
  proxy: OciProxySettings,
  now: number,
  graceMs: number,
  evicted: Set<string>,
): RetentionRule {
  const windowMs = proxy.retentionHours * 3_600_000;
  return {
    now,
    graceMs,
    deleteUntagged: true,
    keeps: (info, activity) => {
      if (now - info.lastModified.getTime() < graceMs) return true;
      if (evicted.has(info.key)) return false;
      if (windowMs === 0) return true;
      const used = Math.max(info.lastModified.getTime(), Date.parse(activity?.pulledAt ?? '') || 0);
      return now - used < windowMs + PULL_RESOLUTION_MS;
    },
  };
}

/**
 * The tags of one proxy to evict: those whose image was not pulled (nor fetched) for
 * `retentionHours`, then, least recently pulled first, those that bring the cache over `quotaBytes`.
 * The cache's size counts each manifest and each blob its images name once (a layer shared by two
 * images is freed only when both go). Images younger than grace count but are never evicted.
 * Manifests of quota-evicted tags go into `evicted` (no retention keeps them).
 */
async function planProxyEvictions(
  services: OciServices,
  proxy: OciProxySettings,
  repositories: string[],
  now: number,
  evicted: Set<string>,
): Promise<PlannedTag[]> {
  const windowMs = proxy.retentionHours * 3_600_000;
  const graceMs = services.settings.gc.graceHours * 3_600_000;
  interface CachedImage extends PlannedTag {
    lastUse: number;
    young: boolean;
    /** What the image holds, by `manifest:<store key>` or `blob:<digest>`, with its size. */
    content: Map<string, number>;
    manifests: string[];
  }
  const images: CachedImage[] = [];
  for (const repository of repositories) {
    for (const tag of await services.manifests.tags(repository)) {
      const digest = await services.manifests.resolve(repository, tag);
      const manifest = digest ? await services.manifests.get(repository, digest.text) : null;
      const stored = digest ? await services.store.head(keys.manifest(repository, digest)) : null;
      if (!digest || !manifest || !stored) continue;
      const activity = await services.activity.read(repository, digest);
      const fetched = await services.store.head(keys.proxyTag(repository, tag));
      const key = keys.manifest(repository, digest);
      const content = new Map([[`manifest:${key}`, manifest.size]]);
      const children = await imageContent(services, repository, manifest.body, content);
      images.push({
        repository,
        tag,
        digest: digest.text,
        pulledAt: activity?.pulledAt ?? null,
        lastUse: Math.max(Date.parse(activity?.pulledAt ?? '') || 0, fetched?.lastModified.getTime() ?? 0),
        // Nothing younger than grace is touched, the cache included.
        young: now - stored.lastModified.getTime() < graceMs,
        content,
        manifests: [key, ...children],
      });
    }
  }
  const plan: CachedImage[] = [];
  const kept = images.filter((image) => {
    if (image.young || windowMs === 0 || now - image.lastUse < windowMs + PULL_RESOLUTION_MS) return true;
    plan.push(image);
    return false;
  });
  if (proxy.quotaBytes > 0) {
    const holders = new Map<string, number>();
    const sizes = new Map<string, number>();
    for (const image of kept)
      for (const [key, size] of image.content) {
        holders.set(key, (holders.get(key) ?? 0) + 1);
        sizes.set(key, size);
      }
    let total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
    for (const image of kept.filter((candidate) => !candidate.young).sort((a, b) => a.lastUse - b.lastUse)) {
      if (total <= proxy.quotaBytes) break;
      plan.push(image);
      for (const key of image.manifests) evicted.add(key);
      for (const key of image.content.keys()) {
        const left = (holders.get(key) ?? 1) - 1;
        holders.set(key, left);
        if (left === 0) total -= sizes.get(key) ?? 0;
      }
    }
  }
  return plan.map(({ repository, tag, digest, pulledAt }) => ({ repository, tag, digest, pulledAt }));
}

/**
 * Adds to `content` the blobs an image names (and, for an index, its child manifests and theirs);
 * returns the store keys of the child manifests.
 */
async function imageContent(
  services: OciServices,
  repository: string,
  body: Buffer,
  content: Map<string, number>,
): Promise<string[]> {
  let document: {
    config?: { digest?: unknown; size?: unknown };
    layers?: { digest?: unknown; size?: unknown }[];
    manifests?: { digest?: unknown }[];
  };
  try {
    document = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  for (const descriptor of [document.config, ...(document.layers ?? [])])
    if (typeof descriptor?.size === 'number' && typeof descriptor.digest === 'string')
      content.set(`blob:${descriptor.digest}`, descriptor.size);
  const children: string[] = [];
  for (const child of document.manifests ?? []) {
    const digest = parseDigest(String(child?.digest));
    const stored = digest ? await services.manifests.get(repository, digest.text) : null;
    if (!digest || !stored) continue;
    const key = keys.manifest(repository, digest);
    children.push(key);
    content.set(`manifest:${key}`, stored.size);
    children.push(...(await imageContent(services, repository, stored.body, content)));
  }
  return children;
}

async function planRepository(
  services: OciServices,
  repository: string,
  retention: RetentionRule,
  evictedTags: Set<string> = new Set(),
) {
  const { store } = services;
  const documents = new Map<
    string,
    { info: ObjectInfo; digest: Digest; children: string[]; subject: Digest | null; blobs: string[] }
  >();
  const referrersOf = new Map<string, string[]>();
  const parentsOf = new Map<string, string[]>();
  for (const info of await listAllObjects(store, keys.manifestsPrefix(repository))) {
    const digest = digestFromKey(info.key.slice(keys.manifestsPrefix(repository).length));
    if (!digest) continue;
    const manifest = await services.manifests.get(repository, digest.text);
    if (!manifest) continue;
    let document: Record<string, unknown> = {};
    try {
      document = JSON.parse(manifest.body.toString('utf8'));
    } catch {}
    const children = ((document.manifests as { digest?: unknown }[] | undefined) ?? [])
      .map((child) => child?.digest)
      .filter((child): child is string => typeof child === 'string');
    const subject = parseDigest(String((document.subject as { digest?: unknown } | undefined)?.digest));
    const blobs = [document.config, ...((document.layers as unknown[] | undefined) ?? [])]
      .map((descriptor) => (descriptor as { digest?: unknown } | undefined)?.digest)
      .filter((blob): blob is string => typeof blob === 'string');
    documents.set(digest.text, { info, digest, children, subject, blobs });
    if (subject) append(referrersOf, subject.text, digest.text);
    for (const child of children) append(parentsOf, child, digest.text);
  }

  // What a set of roots keeps: themselves, an index's children, referrers of anything kept.
  const kept = new Set<string>();
  const keep = (roots: Iterable<string>) => {
    const queue = [...roots];
    for (let digest = queue.pop(); digest !== undefined; digest = queue.pop()) {
      if (kept.has(digest)) continue;
      kept.add(digest);
      queue.push(...(documents.get(digest)?.children ?? []), ...(referrersOf.get(digest) ?? []));
    }
  };
  const tagged: string[] = [];
  for (const tag of await services.manifests.tags(repository)) {
    if (evictedTags.has(`${repository}:${tag}`)) continue;
    const digest = await services.manifests.resolve(repository, tag);
    if (digest) tagged.push(digest.text);
  }
  keep(tagged);

  const untagged = [...documents.keys()].filter((digest) => !kept.has(digest));
  if (!retention.deleteUntagged) {
    keep(untagged);
  } else {
    const retained: string[] = [];
    for (const digest of untagged) {
      const { info, digest: parsed } = documents.get(digest)!;
      if (retention.keeps(info, await services.activity.read(repository, parsed))) retained.push(digest);
    }
    keep(retained);
  }

  const manifests: PlannedManifest[] = [];
  const usedBlobs = new Set<string>();
  for (const [digest, { info, digest: parsed, subject, blobs }] of documents) {
    if (kept.has(digest)) {
      for (const blob of blobs) usedBlobs.add(blob);
      continue;
    }
    const keepers = [...(parentsOf.get(digest) ?? []), ...(subject ? [subject.text] : [])].filter(
      (keeper) => documents.has(keeper) && !kept.has(keeper),
    );
    manifests.push({
      repository,
      digest: parsed,
      etag: info.etag,
      lastModified: info.lastModified.getTime(),
      size: info.size,
      subject,
      keepers,
      blobs,
    });
  }

  const staleActivity: string[] = [];
  const activityPrefix = keys.activityPrefix(repository);
  for (const info of await listAllObjects(store, activityPrefix)) {
    const digest = digestFromKey(info.key.slice(activityPrefix.length));
    const old = retention.now - info.lastModified.getTime() > retention.graceMs;
    if (digest && old && !documents.has(digest.text)) staleActivity.push(info.key);
  }
  return {
    manifests: parentsFirst(manifests),
    usedBlobs,
    staleActivity,
    retainedUntagged: untagged.length - manifests.length,
  };
}

function append(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Orders planned manifests so that each comes after everything that would keep it. */
function parentsFirst(manifests: PlannedManifest[]): PlannedManifest[] {
  const byDigest = new Map(manifests.map((manifest) => [manifest.digest.text, manifest]));
  const ordered: PlannedManifest[] = [];
  const visited = new Set<string>();
  const visit = (manifest: PlannedManifest) => {
    if (visited.has(manifest.digest.text)) return;
    visited.add(manifest.digest.text);
    for (const keeper of manifest.keepers) {
      const planned = byDigest.get(keeper);
      if (planned) visit(planned);
    }
    ordered.push(manifest);
  };
  for (const manifest of manifests) visit(manifest);
  return ordered;
}

/** Carries out a plan under the lease, re-checking each item just before deleting it. */
async function execute(
  services: OciServices,
  planned: Plan,
  now: number,
  lease: HeldLease,
): Promise<GcReport> {
  const { store, metrics } = services;
  const done = emptyPlan();
  done.retainedUntagged = planned.retainedUntagged;
  const freed = (bytes: number) => metrics.gcFreed('oci', bytes);

  for (const state of planned.uploads) {
    lease.check();
    const current = (await readJson<UploadState>(store, keys.upload(state.id)))?.value;
    if (current?.updatedAt !== state.updatedAt) continue; // resumed meanwhile, or gone
    await services.uploads.discard(current);
    done.uploads.push(current);
    metrics.gcDeleted('oci', 'upload');
  }

  // Proxy tags, each only if it still names what was planned and nobody pulled it since; a tag left
  // keeps its manifest (and what that keeps).
  const left = new Set<string>();
  for (const tag of planned.tags) {
    lease.check();
    const current = await services.manifests.resolve(tag.repository, tag.tag);
    const digest = parseDigest(tag.digest);
    const activity = digest ? await services.activity.read(tag.repository, digest) : null;
    if (!digest || current?.text !== tag.digest || (activity?.pulledAt ?? null) !== tag.pulledAt) {
      left.add(`${tag.repository}@${tag.digest}`);
      continue;
    }
    await store.delete(keys.tag(tag.repository, tag.tag));
    await store.delete(keys.proxyTag(tag.repository, tag.tag));
    done.tags.push(tag);
    metrics.gcDeleted('oci', 'tag');
  }

  // Manifests, each after what keeps it: one left standing keeps what it reaches and the blobs it uses.
  const retentionOf = await retentionRules(services, now, planned.evicted);
  const protectedLinks = new Set<string>();
  for (const manifest of planned.manifests) {
    const id = `${manifest.repository}@${manifest.digest.text}`;
    const retention = retentionOf(manifest.repository);
    if (
      left.has(id) ||
      manifest.keepers.some((keeper) => left.has(`${manifest.repository}@${keeper}`)) ||
      !(await stillGarbage())
    ) {
      left.add(id);
      for (const blob of manifest.blobs) protectedLinks.add(`${manifest.repository}@${blob}`);
      continue;
    }
    lease.check();
    if (manifest.subject)
      await store.delete(keys.referrer(manifest.repository, manifest.subject, manifest.digest));
    await store.delete(keys.manifest(manifest.repository, manifest.digest));
    await services.activity.forget(manifest.repository, manifest.digest);
    done.manifests.push(manifest);
    metrics.gcDeleted('oci', 'manifest');
    freed(manifest.size);

    async function stillGarbage(): Promise<boolean> {
      const info = await store.head(keys.manifest(manifest.repository, manifest.digest));
      if (!info || info.etag !== manifest.etag || info.lastModified.getTime() !== manifest.lastModified)
        return false;
      return !retention.keeps(info, await services.activity.read(manifest.repository, manifest.digest));
    }
  }
  for (const key of planned.staleActivity) {
    lease.check();
    await store.delete(key);
  }

  for (const link of planned.links) {
    if (protectedLinks.has(`${link.repository}@${link.digest.text}`)) continue;
    lease.check();
    await services.blobs.unlink(link.repository, link.digest);
    done.links.push(link);
    metrics.gcDeleted('oci', 'link');
  }

  for (const blob of planned.blobs) {
    lease.check();
    if ((await services.blobs.repositoriesWith(blob.digest, 1)).length > 0) continue;
    await store.delete(blob.key);
    // A mount may have linked it between the check and the delete: put the pointer back then.
    if ((await services.blobs.repositoriesWith(blob.digest, 1)).length > 0) {
      await store.put(blob.key, JSON.stringify(blob.pointer), { contentType: 'application/json' });
      continue;
    }
    done.blobs.push(blob);
    metrics.gcDeleted('oci', 'blob');
  }

  for (const info of planned.data) {
    lease.check();
    // Re-read: a pointer to this data may have been committed since the plan.
    if (await isPointedTo(services, info.key)) continue;
    await store.delete(info.key);
    done.data.push(info);
    metrics.gcDeleted('oci', 'data');
    freed(info.size);
  }
  return reportOf(done, false);
}

function reportOf(plan: Plan, dryRun: boolean): GcReport {
  const manifestBytes = plan.manifests.reduce((sum, manifest) => sum + manifest.size, 0);
  const dataBytes = plan.data.reduce((sum, info) => sum + info.size, 0);
  return {
    dryRun,
    expiredUploads: plan.uploads.length,
    evictedTags: plan.tags.length,
    deletedManifests: plan.manifests.length,
    deletedLinks: plan.links.length,
    deletedBlobs: plan.blobs.length,
    deletedData: plan.data.length,
    bytesFreed: manifestBytes + dataBytes,
    retainedUntagged: plan.retainedUntagged,
    deletions: {
      uploads: plan.uploads.map((state) => state.id),
      tags: plan.tags.map(({ repository, tag }) => ({ repository, tag })),
      manifests: plan.manifests.map((m) => ({ repository: m.repository, digest: m.digest.text })),
      links: plan.links.map((link) => ({ repository: link.repository, digest: link.digest.text })),
      blobs: plan.blobs.map((blob) => blob.digest.text),
      data: plan.data.map((info) => info.key),
    },
  };
}

/** The expensive, rare check before deleting data: does any pointer name it now? */
async function isPointedTo(services: OciServices, dataKey: string): Promise<boolean> {
  for (const info of await listAllObjects(services.store, keys.blobsPrefix)) {
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
