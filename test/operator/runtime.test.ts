/** The operator's pure parts: work queue, rate limiter, conditions, comparison, hashing. */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { KubeClient } from '../../operator/kube/client.ts';
import { servedServices } from '../../operator/reconcile/auth-service.ts';
import { RESTAUTH_SERVICES_ANNOTATION } from '../../operator/reconcile/names.ts';
import { S3Clients } from '../../operator/reconcile/s3-clients.ts';
import { type DeploymentObject, rolloutCondition } from '../../operator/reconcile/workload.ts';
import { changedBesidesStatus } from '../../operator/runtime/builder.ts';
import { isSubset, stableHash } from '../../operator/runtime/compare.ts';
import { condition, readyCondition, setCondition, setConditions } from '../../operator/runtime/conditions.ts';
import { Controller } from '../../operator/runtime/controller.ts';
import { EventRecorder } from '../../operator/runtime/events.ts';
import { createMetrics } from '../../operator/runtime/metrics.ts';
import { RateLimiter, WorkQueue } from '../../operator/runtime/queue.ts';

describe('WorkQueue', () => {
  it('hands a key out once however often it is added, and never to two workers at once', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('a');
    queue.add('b');
    expect(queue.depth).toBe(2);
    const first = await queue.get();
    expect(first).toBe('a');
    queue.add('a'); // re-added while processing: held back until done
    expect(await queue.get()).toBe('b');
    let third: string | undefined;
    const pending = queue.get().then((key) => {
      third = key;
    });
    await Promise.resolve();
    expect(third).toBeUndefined();
    queue.done('a');
    await pending;
    expect(third).toBe('a');
  });

  it('releases waiting workers on shutdown and drops pending keys', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('x');
    expect(queue.depth).toBe(0);
  });
});

/** The key `get` hands out within `ms`, or 'nothing'. */
const nextWithin = (queue: WorkQueue, ms: number) =>
  Promise.race([queue.get(), new Promise<string>((resolve) => setTimeout(() => resolve('nothing'), ms))]);

describe('WorkQueue delays', () => {
  it('keeps the sooner of two delays for a key, whichever came first', async () => {
    const queue = new WorkQueue();
    queue.addAfter('recheck', 300_000); // a successful reconcile's periodic recheck
    queue.addAfter('recheck', 5); // then a failure's first retry
    expect(await nextWithin(queue, 1_000)).toBe('recheck');
    queue.done('recheck');
    queue.addAfter('retry', 5);
    queue.addAfter('retry', 300_000);
    expect(await nextWithin(queue, 1_000)).toBe('retry');
    queue.done('retry');
    // Each handed out once: no second timer was left behind.
    expect(await nextWithin(queue, 100)).toBe('nothing');
    queue.shutDown();
  });
});

describe('Controller', () => {
  it('retries a failed reconcile at once even though the last success asked to come back in minutes', async () => {
    // What deleting an S3 AuthService does: its reconciles end with a 300 s recheck pending, the
    // finalizer's removal meets a 409 (the cache had not yet seen the operator's own status write,
    // which queues nothing), and only the retry is left to remove it.
    const runs: string[] = [];
    const controller = new Controller({
      kind: 'Test',
      metrics: createMetrics(),
      log: pino({ level: 'silent' }),
      workers: 1,
      reconcile: async () => {
        runs.push(['recheck', 'conflict', 'finalized'][runs.length] ?? 'again');
        if (runs.length === 1) return { requeueAfterMs: 300_000 };
        if (runs.length === 2) throw new Error('409 Conflict');
        return {};
      },
    });
    controller.start();
    try {
      controller.enqueue('team/late');
      await vi.waitFor(() => expect(runs).toEqual(['recheck']));
      controller.enqueue('team/late'); // the deletion's watch event
      await vi.waitFor(() => expect(runs).toEqual(['recheck', 'conflict', 'finalized']), { timeout: 2_000 });
    } finally {
      await controller.stop();
    }
  });
});

describe('RateLimiter', () => {
  it('backs off exponentially per key and forgets on success', () => {
    const limiter = new RateLimiter({ baseDelayMs: 5, maxDelayMs: 1000, qps: 1000, burst: 1000 });
    expect([1, 2, 3, 4].map(() => limiter.when('k'))).toEqual([5, 10, 20, 40]);
    expect(limiter.when('other')).toBe(5);
    for (let i = 0; i < 20; i++) limiter.when('k');
    expect(limiter.when('k')).toBe(1000);
    limiter.forget('k');
    expect(limiter.when('k')).toBe(5);
  });

  it('limits overall retries with a token bucket', () => {
    let now = 0;
    const limiter = new RateLimiter({ baseDelayMs: 1, qps: 10, burst: 2, now: () => now });
    expect(limiter.when('a')).toBe(1);
    expect(limiter.when('b')).toBe(1);
    expect(limiter.when('c')).toBe(100); // bucket empty: one token per 100 ms
    now += 1000;
    expect(limiter.when('d')).toBe(1);
  });
});

describe('conditions', () => {
  it('keeps lastTransitionTime while the status holds and sets observedGeneration', () => {
    const first = setConditions(
      undefined,
      [{ type: 'BucketReady', status: true, reason: 'Ok', message: 'fine' }],
      1,
      new Date('2026-01-01T00:00:00Z'),
    );
    expect(first[0]).toEqual({
      type: 'BucketReady',
      status: 'True',
      observedGeneration: 1,
      lastTransitionTime: '2026-01-01T00:00:00Z',
      reason: 'Ok',
      message: 'fine',
    });
    const same = setConditions(
      first,
      [{ type: 'BucketReady', status: true, reason: 'Ok', message: 'still' }],
      2,
      new Date('2026-01-02T00:00:00Z'),
    );
    expect(same[0]).toMatchObject({
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 2,
      message: 'still',
    });
    const flipped = setConditions(
      same,
      [{ type: 'BucketReady', status: false, reason: 'S3Error', message: 'down' }],
      2,
      new Date('2026-01-03T00:00:00Z'),
    );
    expect(flipped[0]).toMatchObject({ status: 'False', lastTransitionTime: '2026-01-03T00:00:00Z' });
  });

  it('sets one condition in place, keeping the others and its own transition time while it holds', () => {
    const start = setConditions(
      undefined,
      [condition('Ready', false, 'Progressing', 'rolling out'), condition('BucketReady', true, 'Ok', 'fine')],
      1,
      new Date('2026-01-01T00:00:00Z'),
    );
    const later = setCondition(
      start,
      condition('BucketReady', true, 'Ok', 'still fine'),
      2,
      new Date('2026-01-02T00:00:00Z'),
    );
    expect(later.map((item) => item.type)).toEqual(['Ready', 'BucketReady']);
    expect(later[0]).toEqual(start[0]);
    expect(later[1]).toMatchObject({
      status: 'True',
      observedGeneration: 2,
      lastTransitionTime: '2026-01-01T00:00:00Z',
      message: 'still fine',
    });
    const added = setCondition(later, condition('VolumeReady', 'Unknown', 'Pending', 'no claim yet'), 2);
    expect(added.map((item) => `${item.type}=${item.status}`)).toEqual([
      'Ready=False',
      'BucketReady=True',
      'VolumeReady=Unknown',
    ]);
    // A reconcile that no longer reports a type drops it.
    expect(
      setConditions(added, [condition('Ready', true, 'Ready', 'ok')], 3).map((item) => item.type),
    ).toEqual(['Ready']);
  });

  it('derives Ready from the first failing condition', () => {
    expect(readyCondition([{ type: 'A', status: true, reason: 'Ok', message: '' }], 'serving')).toMatchObject(
      { status: true, reason: 'Ready' },
    );
    expect(
      readyCondition(
        [
          { type: 'A', status: true, reason: 'Ok', message: '' },
          { type: 'B', status: false, reason: 'Broken', message: 'why' },
        ],
        'serving',
      ),
    ).toEqual({ type: 'Ready', status: false, reason: 'Broken', message: 'B: why' });
  });
});

describe('rollout status (kstatus rules)', () => {
  const deployment = (generation: number, replicas: number, status: Record<string, unknown>) => ({
    metadata: { name: 'crates-registry', generation },
    spec: { replicas },
    status,
  });
  const complete = { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 };

  it('is complete only when the latest generation runs on every replica, all available', () => {
    const cases: [ReturnType<typeof deployment> | undefined, string, boolean][] = [
      [undefined, 'DeploymentMissing', false],
      [deployment(3, 2, complete), 'RolloutPending', false],
      [deployment(2, 2, complete), 'RolledOut', true],
      [deployment(2, 0, { observedGeneration: 2 }), 'ScaledToZero', true],
      [deployment(2, 2, { ...complete, updatedReplicas: 1, replicas: 3 }), 'RollingOut', false],
      [deployment(2, 2, { ...complete, replicas: 3 }), 'OldReplicasPending', false],
      [deployment(2, 2, { ...complete, availableReplicas: 1 }), 'ReplicasUnavailable', false],
    ];
    for (const [object, reason, status] of cases)
      expect(rolloutCondition(object, 2), reason).toMatchObject({ type: 'RolloutComplete', reason, status });
  });

  it("carries the Deployment's own reason and message when it gave up or lacks available pods", () => {
    const stuck = rolloutCondition(
      deployment(2, 2, {
        ...complete,
        updatedReplicas: 1,
        conditions: [
          { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'timed out' },
        ],
      }),
      2,
    );
    expect(stuck).toMatchObject({ status: false, reason: 'ProgressDeadlineExceeded' });
    expect(stuck.message).toBe(
      'Deployment crates-registry: timed out (1 updated, 2 available, 2 total of 2 wanted)',
    );
    const unavailable = rolloutCondition(
      deployment(2, 2, {
        ...complete,
        availableReplicas: 0,
        conditions: [
          { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'no' },
        ],
      }),
      2,
    );
    expect(unavailable).toMatchObject({ status: false, reason: 'MinimumReplicasUnavailable' });
  });
});

describe('comparison', () => {
  it('treats fields added by the server as equal, and any changed or missing desired field as different', () => {
    const desired = { spec: { ports: [{ port: 80, name: 'http' }], selector: { a: 'b' } } };
    expect(
      isSubset(desired, {
        spec: {
          ports: [{ port: 80, name: 'http', protocol: 'TCP' }],
          selector: { a: 'b' },
          clusterIP: '10.0.0.1',
        },
      }),
    ).toBe(true);
    expect(isSubset(desired, { spec: { ports: [{ port: 81, name: 'http' }], selector: { a: 'b' } } })).toBe(
      false,
    );
    expect(isSubset(desired, { spec: { ports: [], selector: { a: 'b' } } })).toBe(false);
    expect(
      isSubset(desired, {
        spec: { ports: [{ port: 80, name: 'http' }, { port: 90 }], selector: { a: 'b' } },
      }),
    ).toBe(false);
  });

  it('hashes equal content alike whatever the key order', () => {
    expect(stableHash({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(stableHash({ b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
  });
});

describe('registered services (what every available AuthService pod serves)', () => {
  const a = { name: 'registry-a', credentialsHash: 'a1' };
  const b = { name: 'registry-b', credentialsHash: 'b1' };
  const aRotated = { name: 'registry-a', credentialsHash: 'a2' };
  const deployment = (services: unknown[], availableReplicas: number): DeploymentObject => ({
    metadata: { annotations: { [RESTAUTH_SERVICES_ANNOTATION]: JSON.stringify(services) } },
    status: { availableReplicas },
  });

  it('lists what the Deployment was made with once rolled out, and while it rolls only what old and new pods share', () => {
    expect(servedServices(deployment([a, b], 1), true, [a])).toEqual([a, b]);
    // b is only on the new pods, a's old password only on the old ones.
    expect(servedServices(deployment([a, b], 1), false, [a])).toEqual([a]);
    expect(servedServices(deployment([aRotated, b], 1), false, [a, b])).toEqual([b]);
    // A Registry deleted: gone at once, not when the rollout ends.
    expect(servedServices(deployment([b], 2), false, [a, b])).toEqual([b]);
  });

  it('lists nothing without an available pod, and what it said before for a Deployment it cannot read', () => {
    expect(servedServices(deployment([a], 0), false, [a])).toEqual([]);
    expect(servedServices({ metadata: {}, status: { availableReplicas: 1 } }, true, [a])).toEqual([a]);
    const garbled = { metadata: { annotations: { [RESTAUTH_SERVICES_ANNOTATION]: '{' } } };
    expect(servedServices(garbled, true, [b])).toEqual([b]);
  });
});

describe('watch predicates', () => {
  it('does not queue a resource for its own status write, but does for spec, finalizers and deletion', () => {
    const object = {
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'r', namespace: 'n', resourceVersion: '1', generation: 1 },
      spec: { replicas: 1 },
      status: { credentialsHash: 'x' },
    };
    const statusWritten = { ...object, metadata: { ...object.metadata, resourceVersion: '2' }, status: {} };
    expect(changedBesidesStatus(object, statusWritten)).toBe(false);
    const respecified = { ...object, spec: { replicas: 2 } };
    expect(changedBesidesStatus(object, respecified)).toBe(true);
    expect(
      changedBesidesStatus(object, {
        ...object,
        metadata: { ...object.metadata, finalizers: ['wharf.dev/bucket'] },
      }),
    ).toBe(true);
    expect(
      changedBesidesStatus(object, {
        ...object,
        metadata: { ...object.metadata, deletionTimestamp: new Date() },
      }),
    ).toBe(true);
  });
});

describe('S3 clients and bucket checks', () => {
  const storage = (endpoint: string) =>
    ({ mode: 's3', endpoint, region: 'us-east-1', forcePathStyle: true }) as never;
  const keys = { accessKeyId: 'a', secretAccessKey: 's' };

  it('shares one client per endpoint and key pair, and never puts the secret in its identity', () => {
    const clients = new S3Clients({ recheckMs: 1000 });
    try {
      const first = clients.get(storage('http://s3.test'), keys);
      expect(clients.get(storage('http://s3.test'), { ...keys }).client).toBe(first.client);
      expect(clients.get(storage('http://s3.test'), { ...keys, secretAccessKey: 't' }).client).not.toBe(
        first.client,
      );
      expect(clients.get(storage('http://other.test'), keys).client).not.toBe(first.client);
      expect(first.identity).not.toContain('s3.test');
      expect(first.identity).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      clients.destroy();
    }
  });

  it('trusts a passed check for the recheck period only, and drops clients left unused', () => {
    let now = 0;
    const clients = new S3Clients({ recheckMs: 300_000, idleMs: 600_000, now: () => now });
    try {
      clients.markPassed('bucket', 'bucket b is ready');
      now += 299_999;
      expect(clients.recentlyPassed('bucket')).toBe('bucket b is ready');
      now += 1;
      expect(clients.recentlyPassed('bucket')).toBeUndefined();
      const first = clients.get(storage('http://s3.test'), keys).client;
      now += 600_000;
      expect(clients.get(storage('http://s3.test'), keys).client).not.toBe(first);
    } finally {
      clients.destroy();
    }
  });
});

describe('event recorder', () => {
  it('records without waiting for the apiserver, and drops events past 1,000 pending instead of growing', async () => {
    // An "apiserver" that accepts connections and never answers.
    const sockets: Socket[] = [];
    const server = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const errors: string[] = [];
    const recorder = new EventRecorder(new KubeClient(config), 'test', (error) =>
      errors.push((error as Error).message),
    );
    const registry = {
      apiVersion: 'wharf.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: 'r', namespace: 'n' },
    };
    try {
      const started = performance.now();
      for (let i = 0; i < 1010; i++) await recorder.record(registry, 'Normal', 'Applied', `event ${i}`);
      expect(performance.now() - started).toBeLessThan(2000);
      // Four are being written (and hang), a thousand wait, the rest were dropped: said once.
      expect(errors).toEqual(['event queue full (1000): dropping events, the first Applied for n/r']);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
      await recorder.flush();
    }
    // Drained (every write failed: no apiserver any more), and the count said.
    expect(errors.at(-1)).toBe('dropped 6 events while the event queue was full');
  });
});

describe('API client', () => {
  const clientFor = (port: number) => {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return new KubeClient(config);
  };

  it('sends a request again that the apiserver turned away with 429 and Retry-After, as client-go does', async () => {
    // Answers 429 (as while a custom resource's storage initializes) `refusals` times, then 200.
    let refusals = 2;
    const seen: string[] = [];
    const server = createHttpServer((request, response) => {
      seen.push(`${request.method} ${request.url}`);
      if (request.url?.startsWith('/api/v1/namespaces/always') || refusals-- > 0)
        return void response.writeHead(429, { 'retry-after': '0', 'content-type': 'application/json' }).end(
          JSON.stringify({
            kind: 'Status',
            reason: 'TooManyRequests',
            message: 'storage is (re)initializing',
          }),
        );
      if (request.url?.startsWith('/api/v1/namespaces/plain')) return void response.writeHead(429).end('{}');
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"ConfigMap"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = clientFor((server.address() as { port: number }).port);
    try {
      expect(await client.get('/api/v1/namespaces/n/configmaps/c')).toEqual({ kind: 'ConfigMap' });
      expect(seen).toHaveLength(3);
      // Without Retry-After a 429 is the caller's to handle; and the retries have an end.
      await expect(client.get('/api/v1/namespaces/plain/configmaps/c')).rejects.toMatchObject({
        status: 429,
      });
      seen.length = 0;
      await expect(client.get('/api/v1/namespaces/always/configmaps/c')).rejects.toMatchObject({
        status: 429,
        message: expect.stringContaining('storage is (re)initializing'),
      });
      expect(seen).toHaveLength(10);
    } finally {
      server.close();
    }
  });
});
