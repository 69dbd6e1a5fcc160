import { Counter } from 'prom-client';
import type { Metrics } from '../../observability/metrics.ts';

/** The Cargo registry's own counters, on the server's metrics registry. */
export class CargoMetrics {
  readonly publishes: Counter<'result'>;
  readonly upstream: Counter<'what' | 'outcome'>;
  readonly unpackedBytes: Counter;
  readonly mirror: Counter<'what' | 'result'>;

  constructor(metrics: Metrics) {
    this.publishes = new Counter({
      name: 'wharf_cargo_publishes_total',
      help: 'cargo publish requests by result (published, refused: a check failed, failed: server error)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
    this.upstream = new Counter({
      name: 'wharf_cargo_mirror_upstream_requests_total',
      help: 'Requests of the crates.io mirror to its upstream by kind (index, crate, config) and outcome (HTTP status, or error)',
      labelNames: ['what', 'outcome'],
      registers: [metrics.registry],
    });
    this.unpackedBytes = new Counter({
      name: 'wharf_cargo_unpacked_bytes_total',
      help: 'Bytes inflated while checking published .crate files (stops at maxUnpackedBytes per crate)',
      registers: [metrics.registry],
    });
    this.mirror = new Counter({
      name: 'wharf_cargo_mirror_requests_total',
      help: 'Index files and .crate files the crates.io mirror served, by kind (index, crate) and result: hit (from the cache), revalidated (cached index confirmed by the upstream, 304), stale (upstream failing, cached index served), miss (fetched from the upstream, or failed with nothing cached)',
      labelNames: ['what', 'result'],
      registers: [metrics.registry],
    });
  }
}
