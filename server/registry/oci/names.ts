/** The OCI repository-name and digest grammars, and where each piece of OCI state lives in the store. */

import { isValidGroupName, isValidUsername } from '../../identity/names.ts';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
export const REPOSITORY_NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
export const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^(sha256|sha512):([a-f0-9]+)$/;
const HEX_LENGTH = { sha256: 64, sha512: 128 } as const;

export type DigestAlgorithm = keyof typeof HEX_LENGTH;

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, as clients write it. */
  text: string;
}

export function isRepositoryName(name: string): boolean {
  return name.length <= 255 && REPOSITORY_NAME.test(name);
}

/** Parses `sha256:…`/`sha512:…`; null for anything else (unsupported algorithm or wrong length). */
export function parseDigest(text: string): Digest | null {
  const match = DIGEST.exec(text);
  if (!match) return null;
  const algorithm = match[1] as DigestAlgorithm;
  const hex = match[2] as string;
  if (hex.length !== HEX_LENGTH[algorithm]) return null;
  return { algorithm, hex, text };
}

/** Looks like a digest (has an algorithm prefix), even if not one wharf supports. */
export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/** Namespaces are the names of users and of groups (Quay's organizations). */
export function isNamespaceName(name: string): boolean {
  return isValidUsername(name) && isValidGroupName(name);
}

/** The namespace that owns a repository: its first path component, as in Quay. */
export function namespaceOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash === -1 ? repository : repository.slice(0, slash);
}

/**
 * Store key layout. Repository names contain `/`, so they are percent-encoded into one key segment:
 * listing `oci/repos/` with a delimiter then yields exactly one prefix per repository.
 */
export const keys = {
  /** Content-addressed pointer: {dataKey,size}. Created last, with If-None-Match:*, so a blob is visible only complete. */
  blob: (d: Digest) => `oci/blobs/${d.algorithm}/${d.hex}`,
  blobsPrefix: 'oci/blobs/',
  /** One empty object per repository linking a blob: a reverse index for mounts and GC. */
  blobRef: (d: Digest, repository: string) =>
    `oci/refs/${d.algorithm}/${d.hex}/${encodeRepository(repository)}`,
  blobRefsPrefix: (d: Digest) => `oci/refs/${d.algorithm}/${d.hex}/`,
  refsPrefix: 'oci/refs/',
  /** Blob bytes, written under the upload's own id so completion never copies them. */
  dataPrefix: 'oci/data/',
  uploadData: (uploadId: string) => `oci/data/${uploadId}/blob`,
  uploadPending: (uploadId: string, suffix: string) => `oci/data/${uploadId}/pending-${suffix}`,
  upload: (uploadId: string) => `oci/uploads/${uploadId}.json`,
  uploadsPrefix: 'oci/uploads/',
  repository: (name: string) => `oci/repos/${encodeRepository(name)}/repository.json`,
  repositoriesPrefix: 'oci/repos/',
  repositoryPrefix: (name: string) => `oci/repos/${encodeRepository(name)}/`,
  link: (name: string, d: Digest) => `oci/repos/${encodeRepository(name)}/links/${d.algorithm}/${d.hex}`,
  linksPrefix: (name: string) => `oci/repos/${encodeRepository(name)}/links/`,
  manifest: (name: string, d: Digest) =>
    `oci/repos/${encodeRepository(name)}/manifests/${d.algorithm}/${d.hex}`,
  manifestsPrefix: (name: string) => `oci/repos/${encodeRepository(name)}/manifests/`,
  tag: (name: string, tag: string) => `oci/repos/${encodeRepository(name)}/tags/${tag}`,
  tagsPrefix: (name: string) => `oci/repos/${encodeRepository(name)}/tags/`,
  referrer: (name: string, subject: Digest, d: Digest) =>
    `oci/repos/${encodeRepository(name)}/referrers/${subject.algorithm}/${subject.hex}/${d.algorithm}:${d.hex}`,
  referrersPrefix: (name: string, subject: Digest) =>
    `oci/repos/${encodeRepository(name)}/referrers/${subject.algorithm}/${subject.hex}/`,
  /** When the manifest lost a tag and when it was last pulled by digest: what GC's retention needs. */
  activity: (name: string, d: Digest) =>
    `oci/repos/${encodeRepository(name)}/activity/${d.algorithm}/${d.hex}`,
  activityPrefix: (name: string) => `oci/repos/${encodeRepository(name)}/activity/`,
  /** A proxy's tag: the digest upstream named and when upstream was last asked (revalidation). */
  proxyTag: (name: string, tag: string) => `oci/repos/${encodeRepository(name)}/proxy-tags/${tag}`,
  /** The GC lease: one collection per store at a time. */
  gcLease: 'oci/gc/lease.json',
  /** Since when pulls by digest are recorded (GC deletes nothing unpulled for less than that). */
  pullsRecordedSince: 'oci/gc/pulls-recorded-since.json',
  robot: (namespace: string, name: string) => `oci/robots/${namespace}/${name}.json`,
  robotsPrefix: (namespace: string) => `oci/robots/${namespace}/`,
  signingKeys: 'oci/token/signing-keys.json',
  session: (id: string) => `oci/sessions/${id}.json`,
};

export function encodeRepository(name: string): string {
  return name.replaceAll('/', '%2F');
}

export function decodeRepository(segment: string): string {
  return segment.replaceAll('%2F', '/');
}
