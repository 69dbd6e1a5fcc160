import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface Written {
  digest: string;
  size: number;
  mediaType: string;
}

/** Writes a small OCI image layout by hand: one image tagged `v1`, and a two-platform index tagged `multi`. */
export async function writeOciLayout(dir: string): Promise<{ image: Written; index: Written }> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const blob = async (data: Buffer, mediaType: string): Promise<Written> => {
    const hex = createHash('sha256').update(data).digest('hex');
    await writeFile(path.join(dir, 'blobs', 'sha256', hex), data);
    return { digest: `sha256:${hex}`, size: data.length, mediaType };
  };
  const image = async (arch: string): Promise<Written> => {
    const layer = await blob(
      gzipSync(Buffer.from(`layer for ${arch} ${'x'.repeat(4096)}`)),
      'application/vnd.oci.image.layer.v1.tar+gzip',
    );
    const config = await blob(
      Buffer.from(
        JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: [layer],
    };
    return blob(Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  };
  const single = await image('amd64');
  const amd64 = single;
  const arm64 = await image('arm64');
  const index = await blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { ...amd64, platform: { architecture: 'amd64', os: 'linux' } },
          { ...arm64, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    ),
    'application/vnd.oci.image.index.v1+json',
  );
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...single, annotations: { 'org.opencontainers.image.ref.name': 'v1' } },
        { ...index, annotations: { 'org.opencontainers.image.ref.name': 'multi' } },
      ],
    }),
  );
  return { image: single, index };
}

/** `sha256:<hex>` of some bytes, as OCI writes digests. */
export function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The bytes of an OCI image manifest for a config blob and uncompressed tar layers. */
export function imageManifest(config: Buffer, layers: Buffer[] = []): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: digestOf(config),
        size: config.length,
      },
      layers: layers.map((layer) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: digestOf(layer),
        size: layer.length,
      })),
    }),
  );
}
