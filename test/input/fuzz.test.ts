import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteSummary } from '../../server/app.ts';
import { formatProblem, surfaceOf } from './formats.ts';
import {
  type FuzzTarget,
  type RawRequest,
  send,
  startFuzzTarget,
  storeChanges,
  storeSnapshot,
} from './harness.ts';
import { requestFor } from './requests.ts';

/**
 * Property-based fuzzing of every route of every surface over real sockets. For each route the app
 * registered (read from the running app, so a new route cannot escape), fast-check generates
 * requests with malformed paths, query strings, headers and bodies, and every answer must be:
 * - below 500;
 * - when a refusal (4xx), in the error format of the route's API, and with nothing written to the
 *   store (its keys and ETags are compared before and after);
 * and the server must still answer /healthz and /readyz at the end.
 *
 * Budget: WHARF_FUZZ_RUNS generated requests per route (default 6, about 20 s on 2 cores);
 * WHARF_FUZZ_SEED replays a run. The counts are printed at the end.
 */
const RUNS = Number(process.env.WHARF_FUZZ_RUNS ?? 6);
const SEED = Number(process.env.WHARF_FUZZ_SEED ?? Date.now() % 2 ** 31);

/**
 * Writes a refused request may cause by design, or that happen off the request path:
 * - failed password checks are counted in the store, so that every replica bounds guessing
 *   (auth/throttle/, server/identity/failure-counters.ts);
 * - pulls by digest are recorded by a flush every 60 s (registry/oci/storage/activity.ts), which
 *   may land while a refused request is being checked;
 * - the cargo mirror caches the upstream index file it fetched to answer a download, even when the
 *   answer is 404 (that version is not in it): a cache of upstream data, not a change by the caller.
 */
const EXPECTED_WRITES =
  /^auth\/throttle\/|^oci\/repos\/[^/]+\/activity\/|^oci\/gc\/pulls-recorded-since\.json$|^cargo\/mirror\/index\//;

/** Groups of routes, one test each; the last takes whatever the others do not. */
const GROUPS: [string, (url: string) => boolean][] = [
  [
    'cargo index, Web API and mirror',
    (u) => /^\/(index|mirror)\/|^\/api\/v1\/crates|^\/ktra\/api\/v1\/mirror\//.test(u),
  ],
  ['OCI /v2/ and the token endpoint', (u) => u === '/v2' || u.startsWith('/v2/')],
  ['API v1', (u) => u.startsWith('/api/v1/') || u === '/csrf_token'],
  ['/auth/api/v1', (u) => u.startsWith('/auth/api/v1/')],
  ['Ktra user endpoints', (u) => u.startsWith('/ktra/api/v1/')],
  ['RestAuth', (u) => u.startsWith('/restauth/')],
];
const OTHER = 'everything else (/me, health, metrics)';

function groupOf(url: string): string {
  return GROUPS.find(([, test]) => test(url))?.[0] ?? OTHER;
}

describe('no input crashes a route', () => {
  let target: FuzzTarget;
  const fuzzed = new Set<string>();
  const statuses = new Map<number, number>();
  /** Statuses per route, printed with WHARF_FUZZ_VERBOSE=1 to see how deep the requests get. */
  const perRoute = new Map<string, Map<number, number>>();
  let current = '';
  let requests = 0;

  beforeAll(async () => {
    target = await startFuzzTarget();
  }, 120_000);

  afterAll(async () => {
    process.stdout.write(
      `fuzz: ${requests} requests over ${fuzzed.size} routes (${RUNS} per route, seed ${SEED}); statuses ${[
        ...statuses,
      ]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => `${status}×${count}`)
        .join(' ')}\n`,
    );
    if (process.env.WHARF_FUZZ_VERBOSE)
      for (const [route, counts] of perRoute)
        process.stdout.write(`  ${route}: ${[...counts].map(([status, n]) => `${status}×${n}`).join(' ')}\n`);
    await target?.stop();
  });

  /** Sends one generated request and checks the answer; throws what fast-check reports. */
  async function check(request: RawRequest): Promise<void> {
    const store = target.server.store;
    const before = await storeSnapshot(store);
    const response = await send(target.server.url, request);
    requests++;
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    const counts = perRoute.get(current) ?? new Map<number, number>();
    counts.set(response.status, (counts.get(response.status) ?? 0) + 1);
    perRoute.set(current, counts);
    const what = `${request.method} ${request.path} → ${response.status} ${response.body.toString().slice(0, 300)}`;
    if (response.status >= 500) throw new Error(`5xx: ${what}`);
    if (response.status < 400) return;
    if (request.method !== 'HEAD') {
      const problem = formatProblem(
        surfaceOf(request.method, request.path),
        request.path,
        response.body.toString(),
      );
      if (problem) throw new Error(`wrong error format (${problem}): ${what}`);
    }
    const changes = storeChanges(before, await storeSnapshot(store)).filter(
      (key) => !EXPECTED_WRITES.test(key),
    );
    if (changes.length > 0) throw new Error(`a refused request wrote ${changes.join(', ')}: ${what}`);
  }

  async function fuzz(routes: readonly RouteSummary[]): Promise<void> {
    expect(routes.length).toBeGreaterThan(0);
    for (const [index, route] of routes.entries()) {
      // Generated requests delete things with real credentials: put the fixtures back.
      await target.repair();
      current = `${route.method} ${route.url}`;
      await fc.assert(fc.asyncProperty(requestFor(route, target.fixtures), check), {
        numRuns: RUNS,
        seed: SEED + index,
        endOnFailure: true,
      });
      fuzzed.add(`${route.method} ${route.url}`);
    }
  }

  for (const [name] of [...GROUPS, [OTHER]] as const) {
    it(`${name}: every route answers below 500, refuses in its own format, writes nothing when refusing`, async () => {
      await fuzz(target.server.wharf.routes.filter((route) => groupOf(route.url) === name));
    }, 600_000);
  }

  it('fuzzed every route the app serves, and the server is still healthy', async () => {
    const all = target.server.wharf.routes.map((route) => `${route.method} ${route.url}`);
    expect(all.filter((route) => !fuzzed.has(route))).toEqual([]);
    for (const path of ['/healthz', '/readyz']) {
      const response = await send(target.server.url, { method: 'GET', path, headers: {} });
      expect(response.status, path).toBe(200);
    }
  });
});
