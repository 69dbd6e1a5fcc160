import { Counter } from 'prom-client';
import type { Metrics } from '../../../observability/metrics.ts';

/** Where an answer of a proxy namespace came from. */
export type ProxyResult = 'hit' | 'revalidated' | 'miss' | 'stale';

/** The pull-through caches' counters, labelled by proxy namespace. */
export class ProxyMetrics {
  readonly requests: Counter<'proxy' | 'what' | 'result'>;
  readonly upstreamResponses: Counter<'proxy' | 'status'>;
  readonly upstreamBytes: Counter<'proxy'>;
  readonly servedBytes: Counter<'proxy'>;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.requests = new Counter({
      name: 'wharf_oci_proxy_requests_total',
      help: 'Manifest and blob requests of proxy namespaces by result: hit (cached), revalidated (cached, upstream HEAD agreed), miss (fetched upstream), stale (cached, upstream failed)',
      labelNames: ['proxy', 'what', 'result'],
      registers,
    });
    this.upstreamResponses = new Counter({
      name: 'wharf_oci_proxy_upstream_responses_total',
      help: 'Requests to upstream registries by HTTP status (error: no answer, timeout: none in time)',
      labelNames: ['proxy', 'status'],
      registers,
    });
    this.upstreamBytes = new Counter({
      name: 'wharf_oci_proxy_upstream_bytes_total',
      help: 'Blob bytes fetched from upstream registries',
      labelNames: ['proxy'],
      registers,
    });
    this.servedBytes = new Counter({
      name: 'wharf_oci_proxy_served_bytes_total',
      help: 'Blob bytes served from proxy namespaces (cached or streaming from upstream)',
      labelNames: ['proxy'],
      registers,
    });
  }
}
