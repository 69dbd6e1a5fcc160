import { readJson } from '../../store/json-doc.ts';
import { listAllObjects, type ObjectStore } from '../../store/object-store.ts';
import { canonicalName } from './names.ts';
import type { CrateMeta } from './owners.ts';
import { storeKeys } from './paths.ts';

/** What search needs of one crate, kept in memory per replica. */
export interface CatalogEntry {
  canonical: string;
  name: string;
  description: string | null;
  keywords: string[];
  categories: string[];
  created: string;
}

export interface SearchHit {
  entry: CatalogEntry;
  exactMatch: boolean;
}

/**
 * Every crate's name, description and keywords, for search. A refresh lists `cargo/meta/` once
 * (names and ETags) and reads only the documents that changed since this replica last saw them, so
 * a search costs one listing, not one read per crate; a publish is searchable at once on the
 * replica that took it and within `revalidateMillis` on the others.
 */
export class CrateCatalog {
  private readonly store: ObjectStore;
  private readonly revalidateMillis: number;
  private entries = new Map<string, { etag: string; entry: CatalogEntry }>();
  private refreshing: Promise<CatalogEntry[]> | null = null;
  private last: { at: number; entries: CatalogEntry[] } | null = null;

  constructor(store: ObjectStore, { revalidateMillis = 0 }: { revalidateMillis?: number } = {}) {
    this.store = store;
    this.revalidateMillis = revalidateMillis;
  }

  /**
   * All crates, as of at most `revalidateMillis` ago (the index's bound: a crate page's calls share
   * one listing); concurrent callers share one refresh.
   */
  all(): Promise<CatalogEntry[]> {
    if (this.last && Date.now() - this.last.at < this.revalidateMillis)
      return Promise.resolve(this.last.entries);
    this.refreshing ??= this.refresh()
      .then((entries) => {
        this.last = { at: Date.now(), entries };
        return entries;
      })
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /** This replica changed a crate's metadata: the next call lists again. */
  forget(): void {
    this.last = null;
  }

  private async refresh(): Promise<CatalogEntry[]> {
    const objects = await listAllObjects(this.store, storeKeys.metaPrefix);
    const next = new Map<string, { etag: string; entry: CatalogEntry }>();
    const stale = objects.filter((object) => this.entries.get(object.key)?.etag !== object.etag);
    for (const object of objects) {
      const known = this.entries.get(object.key);
      if (known && known.etag === object.etag) next.set(object.key, known);
    }
    const read = async () => {
      for (let object = stale.pop(); object; object = stale.pop()) {
        const doc = await readJson<CrateMeta>(this.store, object.key);
        if (!doc) continue;
        const meta = doc.value;
        next.set(object.key, {
          etag: doc.etag,
          entry: {
            canonical: canonicalName(meta.name),
            name: meta.name,
            description: meta.description,
            keywords: (meta.keywords ?? []).map((k) => k.toLowerCase()),
            categories: meta.categories ?? [],
            created: meta.created,
          },
        });
      }
    };
    await Promise.all(Array.from({ length: 8 }, read));
    this.entries = next;
    return [...next.values()].map((known) => known.entry);
  }
}

/**
 * crates.io's search: every word of the query must appear in the crate's name (ignoring case and
 * `-`/`_`), one of its keywords or its description. The crate named exactly by the query comes
 * first, then name matches, keyword matches and description matches, each by name.
 */
export function searchCatalog(entries: CatalogEntry[], query: string): SearchHit[] {
  const trimmed = query.trim();
  const words = trimmed.toLowerCase().split(/\s+/).filter(Boolean);
  const exact = canonicalName(trimmed);
  const ranked: { entry: CatalogEntry; rank: number }[] = [];
  for (const entry of entries) {
    let rank = 0;
    let matches = true;
    for (const word of words) {
      const inName = entry.canonical.includes(canonicalName(word));
      const inKeywords = entry.keywords.some((k) => k.includes(word));
      const inDescription = entry.description?.toLowerCase().includes(word) ?? false;
      if (!inName && !inKeywords && !inDescription) {
        matches = false;
        break;
      }
      rank += inName ? 4 : inKeywords ? 2 : 1;
    }
    if (!matches) continue;
    if (words.length > 0 && entry.canonical === exact) rank = Number.MAX_SAFE_INTEGER;
    ranked.push({ entry, rank });
  }
  ranked.sort(
    (a, b) => b.rank - a.rank || (a.entry.name < b.entry.name ? -1 : a.entry.name > b.entry.name ? 1 : 0),
  );
  return ranked.map(({ entry, rank }) => ({ entry, exactMatch: rank === Number.MAX_SAFE_INTEGER }));
}
