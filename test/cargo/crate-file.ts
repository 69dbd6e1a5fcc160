import { constants, crc32, createDeflateRaw, gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export type CrateEntry = {
  name: string;
  body?: string | Buffer;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo' | 'contiguous-file';
  linkname?: string;
};

/** A tar archive (uncompressed) built by hand, for archives cargo itself would never make. */
export async function makeTar(entries: CrateEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    if (type === 'file' || type === 'contiguous-file')
      pack.entry({ name: entry.name, type }, entry.body ?? '');
    else
      pack.entry({
        name: entry.name,
        type,
        ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
      });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A .crate (gzip'd tar) built by hand, for publishes cargo itself would never send. */
export async function makeCrate(entries: CrateEntry[]): Promise<Buffer> {
  return gzipSync(await makeTar(entries));
}

/**
 * A gzip bomb: `archive` followed by `zeroMiB` MiB of zeros, which a tar reader skips as empty
 * header blocks. Valid gzip (CRC and length included), built without compressing the zeros: one
 * MiB of zeros is deflated once into self-contained, byte-aligned blocks (a full flush), and those
 * blocks are repeated. About 1 KiB of .crate per MiB unpacked.
 */
export async function gzipBomb(archive: Buffer, zeroMiB: number): Promise<Buffer> {
  const flushed = async (data: Buffer) => {
    const deflate = createDeflateRaw({ level: 9 });
    const parts: Buffer[] = [];
    deflate.on('data', (part: Buffer) => parts.push(part));
    deflate.write(data);
    await new Promise<void>((resolve) => deflate.flush(constants.Z_FULL_FLUSH, () => resolve()));
    deflate.destroy();
    return Buffer.concat(parts);
  };
  const mib = Buffer.alloc(1024 * 1024);
  const head = await flushed(archive);
  const zeros = await flushed(mib);
  let crc = crc32(archive);
  for (let i = 0; i < zeroMiB; i++) crc = crc32(mib, crc);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((archive.length + zeroMiB * mib.length) % 2 ** 32, 4);
  return Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
    head,
    ...Array.from({ length: zeroMiB }, () => zeros),
    Buffer.from([0x03, 0x00]), // an empty final block
    trailer,
  ]);
}

/** cargo's publish framing. */
export function publishBody(metadata: unknown, crate: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(metadata));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(json.length);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(crate.length);
  return Buffer.concat([head, json, len, crate]);
}

export function metadata(name: string, vers: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    vers,
    deps: [],
    features: {},
    authors: [],
    description: `the ${name} crate`,
    license: 'MIT',
    ...extra,
  };
}

export async function simpleCrate(name: string, vers: string): Promise<Buffer> {
  return makeCrate([
    { name: `${name}-${vers}/Cargo.toml`, body: `[package]\nname = "${name}"\nversion = "${vers}"\n` },
    { name: `${name}-${vers}/src/lib.rs`, body: '' },
  ]);
}
