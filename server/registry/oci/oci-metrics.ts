import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { Metrics } from '../../observability/metrics.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { keys } from './names.ts';

/** A scrape must not hang on a slow store: past this, the previous count is reported. */
const COUNT_TIMEOUT_MS = 2000;
/** Scrapes in a tight loop (anyone who reaches the port) cost at most one listing a second. */
const COUNT_REUSE_MS = 1000;

/** The OCI registry's own gauges, on the server's metrics registry. */
export class OciMetrics {
  /** Upload requests (PATCH, PUT, monolithic POST) this replica is handling right now. */
  readonly uploadRequests: Gauge;

  constructor(metrics: Metrics, store: ObjectStore, logger: Logger) {
    this.uploadRequests = new Gauge({
      name: 'wharf_oci_upload_requests_in_flight',
      help: 'Blob upload requests (PATCH, PUT, monolithic POST) this replica is receiving or completing now',
      registers: [metrics.registry],
    });
    // Sessions live in the store, so any replica can continue one: a per-process count would drift
    // (started here, finished there). Counted from the store when scraped; every replica reports the
    // same figure (aggregate with max, not sum).
    let counting: Promise<number> | null = null;
    let countedAt = 0;
    new Gauge({
      name: 'wharf_oci_upload_sessions',
      help: 'Upload sessions open in the store (all replicas; started and neither completed, cancelled nor expired by GC yet), counted when scraped (at most once a second)',
      registers: [metrics.registry],
      async collect() {
        if (Date.now() - countedAt < COUNT_REUSE_MS) return;
        counting ??= countUploadSessions(store).finally(() => {
          counting = null;
          countedAt = Date.now();
        });
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), COUNT_TIMEOUT_MS);
        });
        try {
          const count = await Promise.race([counting, timeout]);
          if (count !== null) this.set(count);
          else logger.warn('wharf_oci_upload_sessions: the store did not list upload sessions in time');
        } catch (error) {
          // The store's own metrics count the failure; a scrape still answers.
          logger.warn({ err: error }, 'wharf_oci_upload_sessions: cannot list upload sessions');
        } finally {
          clearTimeout(timer);
        }
      },
    });
  }
}

async function countUploadSessions(store: ObjectStore): Promise<number> {
  let count = 0;
  let continuationToken: string | undefined;
  do {
    const page = await store.list({
      prefix: keys.uploadsPrefix,
      ...(continuationToken ? { continuationToken } : {}),
    });
    count += page.objects.filter((object) => object.key.endsWith('.json')).length;
    continuationToken = page.nextContinuationToken;
  } while (continuationToken);
  return count;
}
