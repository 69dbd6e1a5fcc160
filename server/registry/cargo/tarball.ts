import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { CargoError } from './errors.ts';

/**
 * Checks a .crate before anything is stored: gzip, then tar, every entry inside `{name}-{vers}/`,
 * no absolute paths, no `..`, no links pointing out, `Cargo.toml` present, unpacked size bounded.
 */
export async function validateCrateTarball(
  crate: Buffer,
  name: string,
  version: string,
  maxUnpackedBytes: number,
): Promise<void> {
  if (crate.length < 2 || crate[0] !== 0x1f || crate[1] !== 0x8b)
    throw new CargoError(
      'the uploaded .crate is not a gzip-compressed tar archive (the upload may be corrupt)',
    );
  const root = `${name}-${version}/`;
  let sawManifest = false;
  let unpacked = 0;
  const extract = tar.extract();
  const gunzip = createGunzip();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const problem = entryProblem(header.name, header.type ?? 'file', header.linkname ?? null, root);
      if (problem) {
        stream.resume();
        reject(new CargoError(`invalid .crate: ${problem}`));
        extract.destroy();
        return;
      }
      if (header.name === `${root}Cargo.toml` && header.type === 'file') sawManifest = true;
      stream.on('data', (chunk: unknown) => {
        unpacked += (chunk as Buffer).length;
        if (unpacked > maxUnpackedBytes) {
          reject(new CargoError(`invalid .crate: it unpacks to more than ${maxUnpackedBytes} bytes`, 413));
          extract.destroy();
        }
      });
      stream.on('end', () => next());
    });
    extract.on('finish', () => resolve());
    extract.on('error', () =>
      reject(new CargoError('the uploaded .crate is not a valid tar archive (the upload may be corrupt)')),
    );
    gunzip.on('error', () =>
      reject(new CargoError('the uploaded .crate is not valid gzip data (the upload may be corrupt)')),
    );
  });
  Readable.from([crate]).pipe(gunzip).pipe(extract);
  await done;
  if (!sawManifest)
    throw new CargoError(
      `invalid .crate: it has no \`${root}Cargo.toml\` (the package must unpack into \`${root}\`)`,
    );
}

function entryProblem(path: string, type: string, linkname: string | null, root: string): string | null {
  if (path.startsWith('/') || path.includes('\\')) return `entry "${path}" has an absolute or Windows path`;
  const segments = path.split('/');
  if (segments.includes('..')) return `entry "${path}" escapes the package folder with \`..\``;
  if (!path.startsWith(root) && `${path}/` !== root)
    return `entry "${path}" is outside the \`${root}\` folder`;
  if (type === 'link') {
    // Hard links name their target from the archive root.
    if (!linkname?.startsWith(root) || linkname.split('/').includes('..'))
      return `hard link "${path}" points outside the package`;
    return null;
  }
  if (type === 'symlink') {
    if (!linkname || linkname.startsWith('/')) return `link "${path}" points to an absolute path`;
    // Resolve the link relative to its own folder; it must stay inside the package.
    const stack = segments.slice(0, -1);
    for (const part of linkname.split('/')) {
      if (part === '..') {
        if (stack.length <= 1) return `link "${path}" points outside the package`;
        stack.pop();
      } else if (part !== '.' && part !== '') stack.push(part);
    }
    return null;
  }
  if (
    !['file', 'directory', 'contiguous-file', 'pax-header', 'gnu-long-path', 'gnu-long-link-path'].includes(
      type,
    )
  )
    return `entry "${path}" has an unsupported type (${type})`;
  return null;
}
