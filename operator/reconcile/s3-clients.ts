/**
 * S3 clients shared across reconciles, and a memory of which buckets passed their checks.
 *
 * An S3Client resolves its configuration and keeps a connection pool; making one per reconcile
 * threw both away each time. Clients are kept per endpoint, region, path style and key pair (the
 * key pair only as a hash), and destroyed once unused for `idleMs` (a rotated key pair leaves its
 * old client behind until then).
 *
 * A bucket that passed ensureBucket and the conditional-write probe is not asked again for
 * `recheckMs` (WHARF_EXTERNAL_RECHECK_SECONDS): the many reconciles a new resource goes through in
 * its first seconds, and every resync, cost no S3 request. After that period the next reconcile
 * checks again, so a bucket deleted behind the operator's back is noticed (and recreated) then.
 */
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { StorageSpec } from '../api/types.ts';
import { canonicalJson } from '../runtime/compare.ts';
import { type S3Credentials, s3Client } from './bucket.ts';

export interface PooledClient {
  client: S3Client;
  /** Which endpoint and credentials the client talks with (a hash: no secret in it). */
  identity: string;
}

export class S3Clients {
  private readonly clients = new Map<string, { client: S3Client; lastUsed: number }>();
  private readonly passed = new Map<string, { at: number; message: string }>();
  private readonly idleMs: number;
  private readonly recheckMs: number;
  private readonly now: () => number;

  constructor({
    recheckMs,
    idleMs = Math.max(recheckMs, 600_000),
    now = Date.now,
  }: {
    recheckMs: number;
    idleMs?: number;
    now?: () => number;
  }) {
    this.recheckMs = recheckMs;
    this.idleMs = idleMs;
    this.now = now;
  }

  /** The shared client for this storage and key pair (undefined: the SDK's default chain). */
  get(storage: StorageSpec, credentials: S3Credentials | undefined): PooledClient {
    const identity = createHash('sha256')
      .update(
        canonicalJson({
          endpoint: storage.endpoint,
          region: storage.region,
          forcePathStyle: storage.forcePathStyle,
          credentials,
        }),
      )
      .digest('hex');
    const now = this.now();
    this.evictIdle(now);
    let entry = this.clients.get(identity);
    if (!entry) {
      entry = { client: s3Client(storage, credentials), lastUsed: now };
      this.clients.set(identity, entry);
    }
    entry.lastUsed = now;
    return { client: entry.client, identity };
  }

  /**
   * What `check` (a bucket with its settings, through one client) reported when it passed, if that
   * was less than recheckMs ago.
   */
  recentlyPassed(check: string): string | undefined {
    const passed = this.passed.get(check);
    if (passed && this.now() - passed.at < this.recheckMs) return passed.message;
    this.passed.delete(check);
    return undefined;
  }

  markPassed(check: string, message: string): void {
    this.passed.set(check, { at: this.now(), message });
  }

  /** Forgets a check, e.g. once the bucket is deleted. */
  forget(check: string): void {
    this.passed.delete(check);
  }

  private evictIdle(now: number): void {
    for (const [identity, entry] of this.clients) {
      if (now - entry.lastUsed < this.idleMs) continue;
      entry.client.destroy();
      this.clients.delete(identity);
    }
    for (const [check, { at }] of this.passed) if (now - at >= this.recheckMs) this.passed.delete(check);
  }

  destroy(): void {
    for (const { client } of this.clients.values()) client.destroy();
    this.clients.clear();
    this.passed.clear();
  }
}
