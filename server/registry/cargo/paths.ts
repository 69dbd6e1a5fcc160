/** Where things live: cargo's sparse index layout and wharf's store keys for the Cargo registry. */

/** cargo's index path of a crate: `1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…` (lower-cased). */
export function indexPath(name: string): string {
  const n = name.toLowerCase();
  if (n.length === 1) return `1/${n}`;
  if (n.length === 2) return `2/${n}`;
  if (n.length === 3) return `3/${n[0]}/${n}`;
  return `${n.slice(0, 2)}/${n.slice(2, 4)}/${n}`;
}

/** The crate name an index path names, or null when the path is not one cargo would ask for. */
export function nameFromIndexPath(path: string): string | null {
  const parts = path.split('/');
  const name = parts.at(-1) ?? '';
  if (!/^[a-z0-9_-]{1,64}$/.test(name)) return null;
  return indexPath(name) === path ? name : null;
}

export const storeKeys = {
  /** The crate's index file, exactly the bytes served at /index/{path}. */
  index: (name: string) => `cargo/index/${indexPath(name)}`,
  /** Owners, description and the canonical spelling of the name; keyed by the collision-free form. */
  meta: (canonical: string) => `cargo/meta/${canonical}.json`,
  metaPrefix: 'cargo/meta/',
  /** Content-addressed: a .crate is only reachable once an index line names its checksum. */
  crate: (name: string, version: string, cksum: string) =>
    `cargo/crates/${name.toLowerCase()}/${version}/${cksum}.crate`,
  /** The README rendered at publish (sanitized HTML); named by the .crate's checksum, like it. */
  readme: (name: string, version: string, cksum: string) =>
    `cargo/readmes/${name.toLowerCase()}/${version}/${cksum}.html`,
  /** Downloads per version per day of one crate, merged in batches by every replica. */
  downloads: (canonical: string) => `cargo/downloads/${canonical}.json`,
  mirrorIndex: (path: string) => `cargo/mirror/index/${path}.json`,
  mirrorCrate: (name: string, version: string, cksum: string) =>
    `cargo/mirror/crates/${name.toLowerCase()}/${version}/${cksum}.crate`,
};
