import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** A .crate (gzip'd tar) built by hand, for publishes cargo itself would never send. */
export async function makeCrate(
  entries: { name: string; body?: string; type?: 'file' | 'symlink'; linkname?: string }[],
): Promise<Buffer> {
  const pack = tar.pack();
  for (const entry of entries) {
    if (entry.type === 'symlink')
      pack.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname ?? '' });
    else pack.entry({ name: entry.name }, entry.body ?? '');
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
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
