import { buffer } from 'node:stream/consumers';
import { parseDigest } from '../names.ts';
import type { OciServices } from '../services.ts';
import type { Descriptor, StoredManifest } from '../storage/manifests.ts';

/** What a UI shows of a manifest beside its bytes: sizes, platforms, labels, creation time. */
export interface ManifestDetails {
  digest: string;
  media_type: string;
  is_manifest_list: boolean;
  /** The manifest's own bytes. */
  manifest_size: number;
  /** Bytes a pull fetches: the manifest, its config and layers (for an index, every child's). */
  size: number;
  artifact_type: string | null;
  config_media_type: string | null;
  /** The image config's `created` (RFC 3339), or null (artifacts, reproducible builds). */
  created: string | null;
  /** The image config's `config.Labels`. */
  labels: Record<string, string>;
  /** A single image's platform, from its config (`os`, `architecture`, `variant`); null for an index or an artifact. */
  platform: Platform | null;
  layers: { index: number; digest: string; media_type: string; compressed_size: number }[];
  /** An index's images, each with its platform and its own details. */
  platforms: {
    digest: string;
    media_type: string;
    platform: Platform | null;
    size: number;
    created: string | null;
  }[];
  /** The manifest this one refers to (a signature's or SBOM's image), when it has a `subject`. */
  subject: string | null;
  annotations: Record<string, string>;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

interface ManifestDocument {
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: (Descriptor & { platform?: ManifestDetails['platforms'][number]['platform'] })[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

interface ImageConfig {
  created?: unknown;
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
  'os.version'?: unknown;
  config?: { Labels?: unknown };
}

/** A config larger than this is not read for labels (image configs are a few KiB). */
const MAX_CONFIG_BYTES = 1024 * 1024;
const INDEX = /index|manifest\.list/;

/**
 * Reads manifest details; configs are content-addressed, so what was read of one is kept (bounded)
 * and a page of 100 tags of the same image reads its config once.
 */
export class ImageDetails {
  private readonly services: OciServices;
  private readonly configs = new Map<string, ConfigFacts>();

  constructor(services: OciServices) {
    this.services = services;
  }

  async of(repository: string, manifest: StoredManifest): Promise<ManifestDetails> {
    const document = parse(manifest.body);
    const isIndex = INDEX.test(manifest.mediaType);
    const layers = (document.layers ?? []).map((layer, index) => ({
      index,
      digest: String(layer.digest),
      media_type: String(layer.mediaType),
      compressed_size: Number(layer.size) || 0,
    }));
    const platforms: ManifestDetails['platforms'] = [];
    let size = manifest.size;
    let config: ConfigFacts = { created: null, labels: {}, platform: null };
    if (isIndex) {
      for (const child of (document.manifests ?? []).slice(0, 64)) {
        const stored = await this.services.manifests.get(repository, String(child.digest));
        const childDoc = stored ? parse(stored.body) : {};
        const childConfig = stored ? await this.config(repository, childDoc.config) : null;
        const childSize = (stored?.size ?? Number(child.size)) + imageBytes(childDoc);
        size += childSize;
        platforms.push({
          digest: String(child.digest),
          media_type: String(child.mediaType),
          platform: child.platform ?? null,
          size: childSize,
          created: childConfig?.created ?? null,
        });
      }
      // An index has no config of its own: its newest image's creation stands for it.
      config.created =
        platforms
          .map((p) => p.created ?? '')
          .sort()
          .at(-1) || null;
    } else {
      size += imageBytes(document);
      config = await this.config(repository, document.config);
    }
    return {
      digest: manifest.digest.text,
      media_type: manifest.mediaType,
      is_manifest_list: isIndex,
      manifest_size: manifest.size,
      size,
      artifact_type: document.artifactType ?? null,
      config_media_type: document.config?.mediaType ?? null,
      created: config.created,
      labels: config.labels,
      platform: config.platform,
      layers,
      platforms,
      subject: document.subject?.digest ?? null,
      annotations: document.annotations ?? {},
    };
  }

  private async config(repository: string, descriptor: Descriptor | undefined): Promise<ConfigFacts> {
    const none: ConfigFacts = { created: null, labels: {}, platform: null };
    const digest = descriptor ? parseDigest(String(descriptor.digest)) : null;
    if (!digest || !/json/.test(String(descriptor?.mediaType)) || Number(descriptor?.size) > MAX_CONFIG_BYTES)
      return none;
    const known = this.configs.get(digest.text);
    if (known) return known;
    const link = await this.services.blobs.linked(repository, digest);
    const object = link ? await this.services.blobs.read(link) : null;
    if (!object) return none;
    let parsed: ImageConfig = {};
    try {
      parsed = JSON.parse((await buffer(object.body)).toString('utf8')) as ImageConfig;
    } catch {}
    const raw = parsed?.config?.Labels;
    // fromEntries: a label may be named `__proto__`, which an assignment would swallow.
    const labels: Record<string, string> = Object.fromEntries(
      raw && typeof raw === 'object'
        ? Object.entries(raw).filter(([, value]) => typeof value === 'string')
        : [],
    );
    const result = {
      created:
        typeof parsed?.created === 'string' && !Number.isNaN(Date.parse(parsed.created))
          ? parsed.created
          : null,
      labels,
      platform: platformOf(parsed),
    };
    if (this.configs.size >= 10_000) this.configs.clear();
    this.configs.set(digest.text, result);
    return result;
  }
}

/** What is read of an image config. */
interface ConfigFacts {
  created: string | null;
  labels: Record<string, string>;
  platform: Platform | null;
}

/** An image config's platform, as an index would describe it; null unless os and architecture are strings. */
function platformOf(config: ImageConfig): Platform | null {
  const text = (value: unknown) => (typeof value === 'string' && value.length <= 128 ? value : undefined);
  const os = text(config?.os);
  const architecture = text(config?.architecture);
  if (!os || !architecture) return null;
  const variant = text(config.variant);
  const osVersion = text(config['os.version']);
  return {
    os,
    architecture,
    ...(variant ? { variant } : {}),
    ...(osVersion ? { 'os.version': osVersion } : {}),
  };
}

function parse(body: Buffer): ManifestDocument {
  try {
    const document = JSON.parse(body.toString('utf8')) as unknown;
    return document && typeof document === 'object' && !Array.isArray(document)
      ? (document as ManifestDocument)
      : {};
  } catch {
    return {};
  }
}

/** The config and layer bytes an image manifest names. */
function imageBytes(document: ManifestDocument): number {
  return [document.config, ...(document.layers ?? [])].reduce((sum, d) => sum + (Number(d?.size) || 0), 0);
}
