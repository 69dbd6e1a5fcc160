import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { FsObjectStore } from '../../server/store/fs-store.ts';
import { InstrumentedStore, StoreMetrics } from '../../server/store/instrumented-store.ts';
import { storeContract } from './contract.ts';

const registry = new Registry();
const metrics = new StoreMetrics(registry);

// The decorator every server puts around its driver must be invisible: the whole contract holds through it.
storeContract('fs, instrumented', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-instrumented-'));
  const store = new InstrumentedStore(await FsObjectStore.open(dataDir), metrics);
  return {
    store,
    config: { driver: 'fs', dataDir },
    cleanup: async () => {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

describe('store metrics', () => {
  afterAll(() => registry.clear());

  it('counted what the contract did, by operation and result', async () => {
    const counts = new Map<string, number>();
    for (const sample of (await metrics.duration.get()).values)
      if (sample.metricName === 'wharf_store_operation_duration_seconds_count')
        counts.set(`${sample.labels.operation}/${sample.labels.result}`, sample.value);
    // The contract writes buffers and streams, lists, reads past the end, loses conditional
    // writes, completes and aborts multipart uploads, and names unknown ones.
    for (const seen of [
      'put/ok',
      'put_stream/ok',
      'get/ok',
      'head/ok',
      'delete/ok',
      'list/ok',
      'create_multipart/ok',
      'upload_part/ok',
      'complete_multipart/ok',
      'abort_multipart/ok',
      'put/conflict',
      'get/refused',
      'upload_part/refused',
      'ping/ok',
    ])
      expect(counts.get(seen), seen).toBeGreaterThan(0);
    // A refused call or a lost condition is the caller's business, not a failing store.
    // Bodies shorter or longer than announced are the producer's failure, not the store's.
    expect(counts.get('put_stream/aborted')).toBeGreaterThan(0);
    // The only store errors are the malformed completions the contract provokes on purpose.
    expect([...counts.keys()].filter((key) => key.endsWith('/error'))).toEqual(['complete_multipart/error']);
  });
});
