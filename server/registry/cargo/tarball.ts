import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { CargoError } from './errors.ts';

export interface UnpackLimits {
  maxUnpackedBytes: number;
  /** Told how many bytes were inflated, whatever the outcome (wharf_cargo_unpacked_bytes_total). */
  onInflated?: (bytes: number) => void;
}

/**
 * Checks a .crate before anything is stored, by cargo's own unpacking rules: gzip, then tar; every
 * entry a regular file or a directory inside `{name}-{vers}/` (cargo refuses to unpack anything else
 * since CVE-2026-5223, and crates.io refuses links); `Cargo.toml` present. The size bound counts
 * every byte gunzip produces (headers, padding, data past the end of the archive), as cargo and
 * crates.io do, and inflating stops as soon as it is passed: a gzip stream of zeros is the cheapest
 * bomb there is, and it holds no entry data at all.
 */
export async function validateCrateTarball(
  crate: Buffer,
  name: string,
  version: string,
  limits: UnpackLimits,
): Promise<{ manifest: string | null }> {
  const { maxUnpackedBytes } = limits;
  if (crate.length < 2 || crate[0] !== 0x1f || crate[1] !== 0x8b)
    throw new CargoError(
      'the uploaded .crate is not a gzip-compressed tar archive (the upload may be corrupt)',
    );
  const root = `${name}-${version}`;
  let sawManifest = false;
  /** The packaged Cargo.toml (cargo's normalized one), kept for what the publish JSON lacks (edition). */
  let manifest: string | null = null;
  let inflated = 0;
  const source = Readable.from([crate]);
  const gunzip = createGunzip();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    const fail = (error: CargoError) => {
      reject(error);
      source.destroy();
      gunzip.destroy();
      extract.destroy();
    };
    gunzip.on('data', (chunk: Buffer) => {
      inflated += chunk.length;
      if (inflated > maxUnpackedBytes)
        fail(
          new CargoError(
            `invalid .crate: it unpacks to more than this registry's limit of ${maxUnpackedBytes} bytes`,
            413,
          ),
        );
    });
    extract.on('entry', (header, stream, next) => {
      const problem = entryProblem(header.name, header.type ?? null, header.linkname ?? null, root);
      if (problem) {
        fail(new CargoError(`invalid .crate: ${problem}`));
        return;
      }
      if (header.name === `${root}/Cargo.toml` && header.type === 'file') {
        sawManifest = true;
        const chunks: Buffer[] = [];
        let kept = 0;
        stream.on('data', (chunk: unknown) => {
          const bytes = chunk as Buffer;
          kept += bytes.length;
          if (kept <= MAX_MANIFEST_BYTES) chunks.push(bytes);
        });
        stream.on('end', () => {
          manifest = kept <= MAX_MANIFEST_BYTES ? Buffer.concat(chunks).toString('utf8') : null;
          next();
        });
        return;
      }
      stream.on('end', () => next());
      stream.resume();
    });
    extract.on('finish', () => resolve());
    extract.on('error', () =>
      fail(new CargoError('the uploaded .crate is not a valid tar archive (the upload may be corrupt)')),
    );
    gunzip.on('error', () =>
      fail(new CargoError('the uploaded .crate is not valid gzip data (the upload may be corrupt)')),
    );
  });
  source.pipe(gunzip).pipe(extract);
  try {
    await done;
  } finally {
    limits.onInflated?.(inflated);
  }
  if (!sawManifest)
    throw new CargoError(
      `invalid .crate: it has no \`${root}/Cargo.toml\` (the package must unpack into \`${root}/\`)`,
    );
  return { manifest };
}

/** A Cargo.toml larger than this is not read for metadata (the publish still goes through). */
const MAX_MANIFEST_BYTES = 1024 * 1024;

/** Why cargo would refuse to unpack this entry into `{root}/`, or null. */
function entryProblem(
  path: string,
  type: string | null,
  linkname: string | null,
  root: string,
): string | null {
  if (path.startsWith('/') || path.includes('\\')) return `entry "${path}" has an absolute or Windows path`;
  if (path.split('/').includes('..')) return `entry "${path}" escapes the package folder with \`..\``;
  if (!path.startsWith(`${root}/`) && path !== root)
    return `entry "${path}" is outside the \`${root}/\` folder`;
  if (type === 'link' || type === 'symlink')
    return `entry "${path}" is a ${type === 'link' ? 'hard link' : 'symbolic link'} to "${linkname ?? ''}": cargo unpacks only files and directories, package the file itself`;
  if (type !== 'file' && type !== 'directory')
    return `entry "${path}" has an unsupported type (${type ?? 'unknown'}): cargo unpacks only files and directories`;
  // The package folder itself can only be a folder: a file there would stand in for the package.
  if (type !== 'directory' && path.replace(/\/+$/, '') === root)
    return `entry "${path}" replaces the package folder with a file`;
  return null;
}
