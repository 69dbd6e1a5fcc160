import { createHash } from 'node:crypto';
import { listAllObjects, type ObjectStore } from '../../../store/object-store.ts';
import { OciError } from '../errors.ts';
import { type Digest, keys, parseDigest } from '../names.ts';
import type { ActivityLog } from './activity.ts';
import type { BlobStore } from './blobs.ts';
import { DocCache } from './doc-cache.ts';

export const MANIFEST_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
/** Layers a registry is not expected to hold (foreign / non-distributable). */
const FOREIGN_LAYER = /nondistributable|foreign/;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

interface ManifestDocument {
  schemaVersion?: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  size: number;
  body: Buffer;
}

/** Manifests (per repository, by digest), tags pointing at them, and the referrers index. */
export class ManifestStore {
  private readonly store: ObjectStore;
  private readonly blobs: BlobStore;
  private readonly cache: DocCache;
  private readonly activity: ActivityLog | null;
  constructor(
    store: ObjectStore,
    blobs: BlobStore,
    cache = new DocCache(store),
    activity: ActivityLog | null = null,
  ) {
    this.store = store;
    this.blobs = blobs;
    this.cache = cache;
    this.activity = activity;
  }

  /** Validates and stores a manifest; the tag (if any) is written last so it never points at nothing. */
  async put(
    repository: string,
    reference: { tag?: string; digest?: Digest },
    body: Buffer,
    contentType: string | undefined,
    /** Runs once the manifest is known to be valid, before anything is written (creates the repository). */
    beforeWrite: () => Promise<unknown> = async () => {},
    /**
     * `false` for a pull-through cache: what the manifest references is fetched from upstream when
     * a client asks for it, so it is not here yet.
     */
    { checkReferences = true }: { checkReferences?: boolean } = {},
  ): Promise<{ digest: Digest; subject?: Digest }> {
    const digest = reference.digest ?? (await this.digestForTagPush(repository, body));
    const actual = createHash(digest.algorithm).update(body).digest('hex');
    if (actual !== digest.hex)
      throw new OciError('DIGEST_INVALID', 'manifest digest does not match its content');
    let document: ManifestDocument;
    try {
      document = JSON.parse(body.toString('utf8')) as ManifestDocument;
    } catch {
      throw new OciError('MANIFEST_INVALID', 'manifest is not valid JSON');
    }
    if (typeof document !== 'object' || document === null || Array.isArray(document)) {
      throw new OciError('MANIFEST_INVALID', 'manifest is not a JSON object');
    }
    const mediaType = document.mediaType ?? contentType ?? '';
    if (!MANIFEST_TYPES.has(mediaType)) {
      throw new OciError('MANIFEST_INVALID', `unsupported manifest media type ${JSON.stringify(mediaType)}`);
    }
    if (
      document.mediaType &&
      contentType &&
      document.mediaType !== contentType &&
      MANIFEST_TYPES.has(contentType)
    ) {
      throw new OciError('MANIFEST_INVALID', 'Content-Type does not match the manifest mediaType');
    }
    if (checkReferences) await this.checkReferences(repository, mediaType, document);
    await beforeWrite();
    // Stored as `<mediaType>\n<bytes>`: the media type must survive drivers without object metadata.
    await this.store.put(
      keys.manifest(repository, digest),
      Buffer.concat([Buffer.from(`${mediaType}\n`), body]),
    );
    let subject: Digest | undefined;
    if (document.subject) {
      subject = parseDigest(document.subject.digest) ?? undefined;
      if (!subject) throw new OciError('MANIFEST_INVALID', 'subject digest is invalid');
      const descriptor: Descriptor = {
        mediaType,
        digest: digest.text,
        size: body.length,
        ...(referrerArtifactType(document) ? { artifactType: referrerArtifactType(document) } : {}),
        ...(document.annotations ? { annotations: document.annotations } : {}),
      };
      await this.store.put(keys.referrer(repository, subject, digest), JSON.stringify(descriptor), {
        contentType: 'application/json',
      });
    }
    if (reference.tag) {
      // The manifest the tag leaves starts its untagged retention now (recorded before the move).
      const previous = await this.resolveTag(repository, reference.tag, { fresh: true });
      if (previous && previous.text !== digest.text) await this.activity?.markUntagged(repository, previous);
      await this.store.put(keys.tag(repository, reference.tag), JSON.stringify({ digest: digest.text }), {
        contentType: 'application/json',
      });
    }
    return subject ? { digest, subject } : { digest };
  }

  /**
   * A push by tag names no algorithm: sha256, unless this content is already stored here under its
   * sha512 digest (pushed by digest first), whose identity the tag then keeps.
   */
  private async digestForTagPush(repository: string, body: Buffer): Promise<Digest> {
    const hex = createHash('sha512').update(body).digest('hex');
    const sha512: Digest = { algorithm: 'sha512', hex, text: `sha512:${hex}` };
    return (await this.store.head(keys.manifest(repository, sha512))) ? sha512 : sha256Digest(body);
  }

  private async checkReferences(
    repository: string,
    mediaType: string,
    document: ManifestDocument,
  ): Promise<void> {
    if (INDEX_TYPES.has(mediaType)) {
      if (!Array.isArray(document.manifests))
        throw new OciError('MANIFEST_INVALID', 'index has no manifests array');
      for (const child of document.manifests) {
        const digest = parseDigest(String(child?.digest));
        if (!digest) throw new OciError('MANIFEST_INVALID', 'index entry has an invalid digest');
        const size = declaredSize(child);
        const stored = await this.get(repository, digest.text, { fresh: true });
        if (!stored) {
          throw new OciError('MANIFEST_BLOB_UNKNOWN', `manifest ${digest.text} is not in this repository`, {
            detail: { digest: digest.text },
          });
        }
        checkSize(digest, size, stored.size);
      }
      return;
    }
    if (!document.config || !Array.isArray(document.layers ?? [])) {
      throw new OciError('MANIFEST_INVALID', 'image manifest needs config and layers');
    }
    const descriptors = [document.config, ...(document.layers ?? [])];
    for (const descriptor of descriptors) {
      const digest = parseDigest(String(descriptor?.digest));
      if (!digest) throw new OciError('MANIFEST_INVALID', 'descriptor has an invalid digest');
      const size = declaredSize(descriptor);
      if (FOREIGN_LAYER.test(String(descriptor.mediaType)) || (descriptor.urls?.length ?? 0) > 0) continue;
      const link = await this.blobs.linked(repository, digest, { fresh: true });
      if (!link) {
        throw new OciError('MANIFEST_BLOB_UNKNOWN', `blob ${digest.text} is not in this repository`, {
          detail: { digest: digest.text },
        });
      }
      checkSize(digest, size, link.size);
    }
  }

  async resolve(
    repository: string,
    reference: string,
    options: { fresh?: boolean } = {},
  ): Promise<Digest | null> {
    return parseDigest(reference) ?? this.resolveTag(repository, reference, options);
  }

  private async resolveTag(
    repository: string,
    tag: string,
    options: { fresh?: boolean } = {},
  ): Promise<Digest | null> {
    const document = await this.cache.readJson<{ digest: string }>(keys.tag(repository, tag), options);
    return document ? parseDigest(document.digest) : null;
  }

  /**
   * A manifest by tag or digest, as of at most `registry.oci.metadataCacheMillis` ago (DocCache);
   * `fresh`: as the store has it now.
   */
  async get(
    repository: string,
    reference: string,
    options: { fresh?: boolean } = {},
  ): Promise<StoredManifest | null> {
    const digest = await this.resolve(repository, reference, options);
    if (!digest) return null;
    const stored = await this.cache.read(keys.manifest(repository, digest), options);
    if (!stored) return null;
    const newline = stored.indexOf(10);
    const body = stored.subarray(newline + 1);
    return { digest, mediaType: stored.subarray(0, newline).toString('latin1'), size: body.length, body };
  }

  /** Deletes a manifest by digest with the tags that point at it and its referrers entry. */
  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    const manifest = await this.get(repository, digest.text, { fresh: true });
    if (!manifest) return false;
    for (const tag of await this.tags(repository)) {
      const tagged = await this.resolve(repository, tag, { fresh: true });
      if (tagged?.text === digest.text) await this.store.delete(keys.tag(repository, tag));
    }
    let document: ManifestDocument = {};
    try {
      document = JSON.parse(manifest.body.toString('utf8')) as ManifestDocument;
    } catch {}
    // What only this manifest kept (an index's children, its referrers) starts its retention now.
    if (this.activity) {
      const orphans = [
        ...(document.manifests ?? []).map((child) => parseDigest(String(child?.digest))),
        ...(await this.referrers(repository, digest)).map((referrer) => parseDigest(referrer.digest)),
      ];
      for (const orphan of orphans) if (orphan) await this.activity.markUntagged(repository, orphan);
    }
    const subject = document.subject ? parseDigest(String(document.subject.digest)) : null;
    if (subject) await this.store.delete(keys.referrer(repository, subject, digest));
    await this.store.delete(keys.manifest(repository, digest));
    await this.activity?.forget(repository, digest);
    return true;
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    if (!(await this.store.head(keys.tag(repository, tag)))) return false;
    const tagged = await this.resolveTag(repository, tag, { fresh: true }).catch(() => null);
    if (tagged) await this.activity?.markUntagged(repository, tagged);
    await this.store.delete(keys.tag(repository, tag));
    return true;
  }

  async tags(repository: string): Promise<string[]> {
    return listAll(this.store, keys.tagsPrefix(repository));
  }

  /** Tags with the time each last moved (its object's write), from one listing. */
  async tagsWithTimes(repository: string): Promise<{ name: string; lastModified: Date }[]> {
    const prefix = keys.tagsPrefix(repository);
    return (await listAllObjects(this.store, prefix)).map((object) => ({
      name: object.key.slice(prefix.length),
      lastModified: object.lastModified,
    }));
  }

  async referrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    const prefix = keys.referrersPrefix(repository, subject);
    const result: Descriptor[] = [];
    for (const name of await listAll(this.store, prefix)) {
      const doc = await this.cache.readJson<Descriptor>(prefix + name);
      if (doc) result.push(doc);
    }
    return result;
  }
}

/** A descriptor's `size`: required by the image spec, a non-negative integer (int64). */
function declaredSize(descriptor: Descriptor): number {
  const size = descriptor.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new OciError('MANIFEST_INVALID', `descriptor ${String(descriptor.digest)} has no valid size`, {
      detail: { digest: descriptor.digest, size: size ?? null },
    });
  return size;
}

/**
 * A descriptor whose size disagrees with the stored content would make an image no client can pull
 * (they check sizes as they fetch): refused at push. distribution only checks existence.
 */
function checkSize(digest: Digest, declared: number, stored: number): void {
  if (declared !== stored)
    throw new OciError(
      'MANIFEST_INVALID',
      `descriptor ${digest.text} says ${declared} bytes, the stored content has ${stored}`,
      {
        detail: { digest: digest.text, size: declared, stored },
      },
    );
}

/** The artifactType a referrers response shows: the manifest's own, else its config media type. */
function referrerArtifactType(document: ManifestDocument): string | undefined {
  return document.artifactType ?? document.config?.mediaType;
}

export function sha256Digest(body: Buffer): Digest {
  const hex = createHash('sha256').update(body).digest('hex');
  return { algorithm: 'sha256', hex, text: `sha256:${hex}` };
}

/** Every key name under a prefix (one level), following continuation tokens. */
/** The names of the objects under a prefix (the keys without it). */
export async function listAll(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await listAllObjects(store, prefix)).map((object) => object.key.slice(prefix.length));
}
