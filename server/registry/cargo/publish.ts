import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AccessPolicy } from '../../access/policy.ts';
import type { Principal } from '../../identity/principal.ts';
import { updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { AccessError, cargoRefusal } from './access.ts';
import { CargoError } from './errors.ts';
import { type IndexLine, parseIndexFile, readIndexFile, updateIndexFile } from './index-file.ts';
import {
  manifestEdition,
  type PublishMetadata,
  toIndexLine,
  validateMetadata,
  versionDetails,
} from './metadata.ts';
import { canonicalName, compareVersions, withoutBuildMetadata } from './names.ts';
import { type CrateMeta, readMeta } from './owners.ts';
import { storeKeys } from './paths.ts';
import { renderReadme } from './readme.ts';
import type { StoredFiles } from './stored-files.ts';
import { validateCrateTarball } from './tarball.ts';

export interface PublishLimits {
  maxCrateBytes: number;
  maxUnpackedBytes: number;
  /** Bytes inflated while checking the .crate, for the metrics. */
  onInflated?: (bytes: number) => void;
}

/** `cargo publish`'s body: u32-LE JSON length, JSON, u32-LE .crate length, .crate bytes. */
export function parsePublishBody(body: Buffer, maxCrateBytes: number): { metadata: unknown; crate: Buffer } {
  const corrupt = "the publish request is malformed (expected cargo's length-prefixed JSON and .crate)";
  if (body.length < 4) throw new CargoError(corrupt);
  const jsonLength = body.readUInt32LE(0);
  if (4 + jsonLength + 4 > body.length) throw new CargoError(corrupt);
  let metadata: unknown;
  try {
    metadata = JSON.parse(body.subarray(4, 4 + jsonLength).toString('utf8'));
  } catch {
    throw new CargoError('the publish metadata is not valid JSON');
  }
  const crateLength = body.readUInt32LE(4 + jsonLength);
  if (crateLength > maxCrateBytes) throw tooLarge(crateLength, maxCrateBytes);
  const start = 8 + jsonLength;
  if (start + crateLength !== body.length) throw new CargoError(corrupt);
  return { metadata, crate: body.subarray(start, start + crateLength) };
}

/** The largest publish request: the .crate, its JSON metadata (README included), two lengths. */
export function publishBodyLimit(maxCrateBytes: number): number {
  return maxCrateBytes + 4 * 1024 * 1024;
}

export function tooLarge(size: number | null, max: number): CargoError {
  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return new CargoError(
    `the .crate ${size === null ? 'is' : `is ${mib(size)},`} larger than this registry's limit of ${mib(max)}: exclude files you do not need with \`package.exclude\`/\`include\` in Cargo.toml (see \`cargo package --list\`)`,
    413,
  );
}

/**
 * A publish, in the order that loses nothing and leaves no trace when refused: every check first;
 * then the .crate under a key named by its checksum (unreferenced until the index says so); then
 * the index line, appended by a conditional write with retry. A failure after the .crate was
 * written removes it again; a crash leaves it for GC (leftovers.ts).
 */
export async function publishCrate(
  store: ObjectStore,
  files: StoredFiles,
  logger: Logger,
  policy: AccessPolicy,
  principal: Principal,
  body: Buffer,
  limits: PublishLimits,
): Promise<{ line: IndexLine; created: boolean }> {
  // The crate's metadata and its index file are read together; permission and the version are
  // judged before the tarball is inflated, so a refused publish costs no decompression.
  const { meta, crate, existing, known } = await parse(body, limits);
  checkMayPublish(policy, existing, meta, principal);
  const indexKey = storeKeys.index(meta.name);
  const lines = known ? parseIndexFile(known.body.toString('utf8')) : [];
  checkNewVersion(lines, meta);
  // Inflating costs CPU (up to maxUnpackedBytes): only for a publish that may happen.
  const { manifest } = await validateCrateTarball(crate, meta.name, meta.vers, limits);

  const cksum = createHash('sha256').update(crate).digest('hex');
  const line = toIndexLine(meta, cksum, new Date());
  // Rendered once here, not on every read; sanitized before it is stored (readme.ts).
  const readme = meta.readme ? await renderReadme(meta.readme) : null;
  const details = versionDetails(meta, {
    edition: manifestEdition(manifest),
    crateSize: crate.length,
    publishedBy: principal.kind === 'anonymous' ? null : principal.name,
    readme: readme !== null,
  });
  const metaKey = storeKeys.meta(canonicalName(meta.name));
  let claimedName = false;
  if (!existing) {
    // Claim the name; a racing first publish of the same name (any spelling) is checked again here.
    await updateJson<CrateMeta>(store, metaKey, (current) => {
      if (current) {
        checkMayPublish(policy, current, meta, principal);
        claimedName = false;
        return undefined;
      }
      claimedName = true;
      const now = new Date().toISOString();
      return {
        name: meta.name,
        owners: { users: principal.kind === 'anonymous' ? [] : [principal.name], groups: [] },
        description: meta.description ?? null,
        created: now,
        updated: now,
      };
    });
  }
  const crateKey = storeKeys.crate(meta.name, meta.vers, cksum);
  const readmeKey = readme === null ? null : storeKeys.readme(meta.name, meta.vers, cksum);
  let indexed = false;
  try {
    await store.put(crateKey, crate, { contentType: 'application/gzip', contentLength: crate.length });
    files.rememberCrate(crateKey, crate);
    if (readmeKey) await store.put(readmeKey, readme as string, { contentType: 'text/html; charset=utf-8' });
    await updateIndexFile(
      store,
      indexKey,
      (current) => {
        checkNewVersion(current, meta);
        return [...current, line];
      },
      { known },
    );
    indexed = true;
    files.forget(indexKey);
    // A leftover of an earlier publish killed before its index update has this key too (it names
    // the checksum); GC may have collected it just now. Put it back: the index names it.
    await ensureCrate(store, logger, crateKey, crate);
  } finally {
    if (!indexed)
      await undoPublish(store, logger, [crateKey, readmeKey], indexKey, cksum, claimedName ? metaKey : null);
  }
  // What crates.io keeps beyond the index line, after it: a crash in between leaves a version whose
  // metadata reads as null, as for crates published before wharf kept it. The newest version's
  // description, links and words become the crate's.
  const newest = lines.every((l) => compareVersions(meta.vers, l.vers) > 0);
  await updateJson<CrateMeta>(store, metaKey, (current) =>
    current
      ? {
          ...current,
          ...(newest
            ? {
                description: details.description,
                homepage: details.homepage,
                documentation: details.documentation,
                repository: details.repository,
                keywords: details.keywords,
                categories: details.categories,
              }
            : {}),
          versions: { ...current.versions, [meta.vers]: details },
          updated: new Date().toISOString(),
        }
      : undefined,
  ).catch((error: unknown) => logger.warn({ err: error, crate: meta.name }, 'crate metadata not updated'));
  return { line, created: !existing };

  async function parse(body: Buffer, limits: PublishLimits) {
    const { metadata: raw, crate } = parsePublishBody(body, limits.maxCrateBytes);
    const meta = validateMetadata(raw);
    const [existing, known] = await Promise.all([
      readMeta(store, meta.name),
      files.index(storeKeys.index(meta.name)),
    ]);
    return { meta, crate, existing, known };
  }
}

function checkMayPublish(
  policy: AccessPolicy,
  existing: CrateMeta | null,
  meta: PublishMetadata,
  principal: Principal,
): void {
  const decision = policy.decide(principal, { operation: 'cargo.publish', crate: meta.name, existing });
  if (!decision.allowed) {
    if (decision.reason === 'forbidden' && existing)
      throw new AccessError(
        403,
        `you are not an owner of crate \`${existing.name}\`: ask an owner (\`cargo owner --list ${existing.name}\`) to add you`,
      );
    throw cargoRefusal(decision, false);
  }
  if (existing && existing.name !== meta.name)
    throw new CargoError(
      `crate \`${existing.name}\` already exists and names may not differ only in case or in \`-\`/\`_\`: publish as \`${existing.name}\` or choose another name`,
    );
}

function checkNewVersion(lines: IndexLine[], meta: PublishMetadata): void {
  const release = withoutBuildMetadata(meta.vers);
  const clash = lines.find((l) => withoutBuildMetadata(l.vers) === release);
  if (!clash) return;
  throw new CargoError(
    clash.vers === meta.vers
      ? `crate version \`${meta.name}@${meta.vers}\` is already uploaded: versions are immutable, bump the version in Cargo.toml`
      : `crate version \`${meta.name}@${clash.vers}\` is already uploaded, and \`${meta.vers}\` differs only in build metadata: bump the version in Cargo.toml`,
    409,
  );
}

async function ensureCrate(
  store: ObjectStore,
  logger: Logger,
  crateKey: string,
  crate: Buffer,
): Promise<void> {
  try {
    if (!(await store.head(crateKey)))
      await store.put(crateKey, crate, { contentType: 'application/gzip', contentLength: crate.length });
  } catch (error) {
    logger.error({ err: error, crateKey }, 'could not check the .crate of a publish after its index update');
  }
}

async function undoPublish(
  store: ObjectStore,
  logger: Logger,
  [crateKey, readmeKey]: [string, string | null],
  indexKey: string,
  cksum: string,
  claimedMetaKey: string | null,
): Promise<void> {
  try {
    const lines = (await readIndexFile(store, indexKey)) ?? [];
    // Same bytes already published under this key by someone else: that copy is referenced, keep it.
    if (!lines.some((l) => l.cksum === cksum)) {
      await store.delete(crateKey);
      if (readmeKey) await store.delete(readmeKey);
    }
    if (claimedMetaKey && lines.length === 0) await store.delete(claimedMetaKey);
  } catch (error) {
    logger.error({ err: error, crateKey }, 'could not clean up after a failed publish');
  }
}
