import { createHash } from 'node:crypto';
import { type CrateDownloads, day, KEEP_DAYS } from './downloads.ts';
import type { IndexDependency, IndexLine } from './index-file.ts';
import { compareVersions } from './names.ts';
import type { CrateMeta, VersionDetails } from './owners.ts';

/**
 * crates.io's JSON views (its `Encodable*` types) built from what wharf stores: the index file (the
 * truth about versions, dependencies, features, yanked), the crate's metadata document and its
 * download counts. Fields wharf does not have (audit actions, trusted publishing, line counts) are
 * present with crates.io's empty values, so clients written for crates.io parse them.
 */

/** A stable positive 31-bit id for a string (crates.io's ids are database integers). */
export function numericId(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) >>> 1 || 1;
}

export const versionId = (crate: string, version: string) => numericId(`${crate.toLowerCase()}@${version}`);

const isPrerelease = (version: string) => version.split('+')[0]?.includes('-') ?? false;

/**
 * Index files are parsed once per ETag and shared (StoredFiles.indexLines), so what is derived from
 * one parse is kept with it: a 500-version crate is sorted once, not on each of a page's calls.
 */
const sortedOf = new WeakMap<IndexLine[], IndexLine[]>();
const summaryOf = new WeakMap<IndexLine[], VersionSummary>();

/** The crate's versions, highest first (semver), as crates.io lists them. Shared: do not change. */
export function bySemverDescending(lines: IndexLine[]): IndexLine[] {
  let sorted = sortedOf.get(lines);
  if (!sorted) {
    sorted = [...lines].sort((a, b) => compareVersions(b.vers, a.vers));
    sortedOf.set(lines, sorted);
  }
  return sorted;
}

export interface VersionSummary {
  /** crates.io's default version: highest stable not yanked, else highest not yanked, else highest. */
  defaultVersion: IndexLine | undefined;
  maxVersion: string;
  maxStableVersion: string | null;
  newestVersion: string;
}

export function summarize(lines: IndexLine[]): VersionSummary {
  const known = summaryOf.get(lines);
  if (known) return known;
  const summary = computeSummary(lines);
  summaryOf.set(lines, summary);
  return summary;
}

function computeSummary(lines: IndexLine[]): VersionSummary {
  const sorted = bySemverDescending(lines);
  const live = sorted.filter((l) => !l.yanked);
  const stable = live.filter((l) => !isPrerelease(l.vers));
  const newest = [...lines].sort((a, b) => (a.pubtime ?? '').localeCompare(b.pubtime ?? '')).at(-1);
  return {
    defaultVersion: stable[0] ?? live[0] ?? sorted[0],
    maxVersion: live[0]?.vers ?? '0.0.0',
    maxStableVersion: stable[0]?.vers ?? null,
    newestVersion: newest?.vers ?? '0.0.0',
  };
}

/** The time a version was published: its index `pubtime`, else the crate's creation. */
function publishedAt(line: IndexLine, meta: CrateMeta): string {
  return toTimestamp(line.pubtime ?? meta.created);
}

/** crates.io writes RFC 3339 with microseconds and `+00:00`; any RFC 3339 parser reads ours. */
function toTimestamp(iso: string): string {
  return new Date(iso).toISOString();
}

const NO_DETAILS: VersionDetails = {
  description: null,
  homepage: null,
  documentation: null,
  repository: null,
  license: null,
  license_file: null,
  authors: [],
  keywords: [],
  categories: [],
  edition: null,
  crate_size: 0,
  published_by: null,
  readme: false,
};

export function detailsOf(meta: CrateMeta, version: string): VersionDetails {
  return meta.versions?.[version] ?? NO_DETAILS;
}

/** A user as crates.io shows a publisher or an owner (wharf has no avatars or profile pages). */
export function publicUser(login: string, kind?: 'user' | 'team') {
  return {
    id: numericId(`user:${login}`),
    login,
    name: login,
    avatar: null,
    url: null,
    ...(kind ? { kind } : {}),
  };
}

/** crates.io's EncodableVersion. */
export function versionView(meta: CrateMeta, line: IndexLine, downloads: CrateDownloads) {
  const crate = meta.name;
  const details = detailsOf(meta, line.vers);
  const base = `/api/v1/crates/${crate}/${line.vers}`;
  const at = publishedAt(line, meta);
  return {
    id: versionId(crate, line.vers),
    crate,
    num: line.vers,
    dl_path: `${base}/download`,
    readme_path: `${base}/readme`,
    updated_at: at,
    created_at: at,
    downloads: downloads.versions[line.vers] ?? 0,
    features: { ...line.features, ...line.features2 },
    yanked: line.yanked,
    yank_message: null,
    lib_links: line.links ?? null,
    license: details.license,
    links: {
      dependencies: `${base}/dependencies`,
      version_downloads: `${base}/downloads`,
      authors: `${base}/authors`,
    },
    crate_size: details.crate_size,
    published_by: details.published_by ? publicUser(details.published_by) : null,
    audit_actions: [],
    checksum: line.cksum,
    rust_version: line.rust_version ?? null,
    has_lib: null,
    bin_names: null,
    edition: details.edition,
    description: details.description,
    homepage: details.homepage,
    documentation: details.documentation,
    repository: details.repository,
    trustpub_data: null,
    linecounts: null,
  };
}

/** crates.io's EncodableCrate; `versions`/`keywords`/`categories` list ids when included. */
export function crateView(
  meta: CrateMeta,
  lines: IndexLine[],
  downloads: CrateDownloads,
  { exactMatch = false, include = false }: { exactMatch?: boolean; include?: boolean } = {},
) {
  const name = meta.name;
  const summary = summarize(lines);
  const total = Object.values(downloads.versions).reduce((sum, n) => sum + n, 0);
  return {
    id: name,
    name,
    updated_at: toTimestamp(meta.updated),
    versions: include ? bySemverDescending(lines).map((l) => versionId(name, l.vers)) : null,
    keywords: include ? (meta.keywords ?? []) : null,
    categories: include ? (meta.categories ?? []) : null,
    badges: [],
    created_at: toTimestamp(meta.created),
    downloads: total,
    recent_downloads: recentDownloads(downloads),
    default_version: summary.defaultVersion?.vers ?? null,
    num_versions: lines.length,
    yanked: summary.defaultVersion?.yanked ?? false,
    max_version: summary.maxVersion,
    newest_version: summary.newestVersion,
    max_stable_version: summary.maxStableVersion,
    description: meta.description,
    homepage: meta.homepage ?? null,
    documentation: meta.documentation ?? null,
    repository: meta.repository ?? null,
    links: {
      version_downloads: `/api/v1/crates/${name}/downloads`,
      versions: `/api/v1/crates/${name}/versions`,
      owners: `/api/v1/crates/${name}/owners`,
      owner_team: `/api/v1/crates/${name}/owner_team`,
      owner_user: `/api/v1/crates/${name}/owner_user`,
      reverse_dependencies: `/api/v1/crates/${name}/reverse_dependencies`,
    },
    exact_match: exactMatch,
    trustpub_only: false,
  };
}

/** Downloads in the last 90 days (crates.io's `recent_downloads`). */
export function recentDownloads(downloads: CrateDownloads, now = Date.now()): number {
  const oldest = day(now - KEEP_DAYS * 86_400_000);
  let sum = 0;
  for (const [date, perVersion] of Object.entries(downloads.days))
    if (date >= oldest) for (const n of Object.values(perVersion)) sum += n;
  return sum;
}

/** crates.io's EncodableDependency of one dependency of `crate@version`. */
export function dependencyView(crate: string, version: string, dep: IndexDependency, index: number) {
  return {
    id: numericId(`${crate.toLowerCase()}@${version}#${index}`),
    version_id: versionId(crate, version),
    // The real crate's name (a renamed dependency's `package`), as crates.io's `crate_id`.
    crate_id: dep.package ?? dep.name,
    req: dep.req,
    optional: dep.optional,
    default_features: dep.default_features,
    features: dep.features,
    target: dep.target,
    kind: dep.kind,
    downloads: 0,
    ...(dep.package ? { explicit_name: dep.name } : {}),
  };
}

/** Keywords and categories as crates.io's EncodableKeyword/EncodableCategory. */
export function keywordView(keyword: string, createdAt: string, count: number) {
  return { id: keyword, keyword, created_at: toTimestamp(createdAt), crates_cnt: count };
}

export function categoryView(slug: string, createdAt: string, count: number) {
  return {
    id: slug,
    category: slug,
    slug,
    description: '',
    created_at: toTimestamp(createdAt),
    crates_cnt: count,
  };
}
