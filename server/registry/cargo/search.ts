import type { ObjectStore } from '../../store/object-store.ts';
import { readIndexFile } from './index-file.ts';
import { canonicalName, compareVersions } from './names.ts';
import { readMeta } from './owners.ts';
import { storeKeys } from './paths.ts';

export interface SearchResult {
  crates: { name: string; max_version: string; description: string | null }[];
  meta: { total: number };
}

/**
 * `cargo search`: crates whose name contains the query (ignoring case and `-`/`_`), exact match
 * first, then by name. Names come from the store's key listing, so only the page's crates are read.
 */
export async function searchCrates(
  store: ObjectStore,
  query: string,
  perPage: number,
  page: number,
): Promise<SearchResult> {
  const needle = canonicalName(query.trim());
  const matches: string[] = [];
  let continuationToken: string | undefined;
  do {
    const listing = await store.list({
      prefix: storeKeys.metaPrefix,
      ...(continuationToken ? { continuationToken } : {}),
    });
    for (const object of listing.objects) {
      const canonical = object.key.slice(storeKeys.metaPrefix.length, -'.json'.length);
      if (canonical.includes(needle)) matches.push(canonical);
    }
    continuationToken = listing.nextContinuationToken;
  } while (continuationToken);
  matches.sort((a, b) => Number(b === needle) - Number(a === needle) || (a < b ? -1 : a > b ? 1 : 0));
  const slice = matches.slice((page - 1) * perPage, page * perPage);
  const crates = [];
  for (const canonical of slice) {
    const meta = await readMeta(store, canonical);
    if (!meta) continue;
    // The highest version not yanked, as crates.io shows it (the index file is the truth).
    const lines = (await readIndexFile(store, storeKeys.index(meta.name))) ?? [];
    const live = lines.filter((l) => !l.yanked);
    const max = (live.length > 0 ? live : lines)
      .map((l) => l.vers)
      .sort(compareVersions)
      .at(-1);
    crates.push({ name: meta.name, max_version: max ?? '0.0.0', description: meta.description });
  }
  return { crates, meta: { total: matches.length } };
}
