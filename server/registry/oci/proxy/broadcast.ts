import { Readable } from 'node:stream';

/** Bytes a reader may fall behind before the fetch waits for it (briefly: {@link WAIT_BUDGET_MS}). */
export const READER_LAG_BYTES = 512 * 1024;
/**
 * How long, in all, the fetch waits for one reader that fell behind; then that reader is detached
 * and reads the rest from the store once the blob is committed. Clients that keep up (a hiccup, a
 * busy moment) are waited for, which keeps chunks young and memory low; a slow or stalled one
 * costs the others a second at most.
 */
export const WAIT_BUDGET_MS = 1000;
/** The start of a blob is kept this long, so readers who come a little late still read along. */
export const REPLAY_BYTES = 1024 * 1024;

/** Where a reader moved off the shared chunks goes on: the committed blob from `offset` on. */
export type ReadRest = (offset: number) => Promise<Readable | null>;

/**
 * One blob being fetched, shared by every client that asks for it meanwhile. The fetch appends
 * chunks as they arrive from upstream; each reader has a cursor into them. Memory is bounded
 * whatever the blob size and the readers: chunks are shared, and those behind every cursor are
 * dropped; when a reader is more than {@link READER_LAG_BYTES} behind, the fetch waits for it, up
 * to {@link WAIT_BUDGET_MS} in all, then detaches it: once the blob is committed, it reads the rest
 * from the store. So no client holds the upstream transfer for long, however slow. The last chunk
 * is released only after the blob is verified and committed: a corrupt or cut upstream body
 * reaches every reader as an error before its end, never complete.
 */
export class BlobBroadcast {
  /** The announced length, when upstream gave one. */
  readonly size: number | undefined;
  /** Chunks from `base` (an absolute offset) to `released`. */
  private chunks: Buffer[] = [];
  private base = 0;
  private released = 0;
  /** The newest chunk, held back until the next one arrives or the blob is committed. */
  private held: Buffer | null = null;
  private state: 'open' | 'committed' | 'failed' = 'open';
  private error: Error | null = null;
  private readRest: ReadRest | null = null;
  private readonly readers = new Set<BroadcastReader>();
  /** Set while the fetch waits for readers that fell behind. */
  private waiting: { since: number; resume: () => void; timer: NodeJS.Timeout } | null = null;

  constructor(size: number | undefined) {
    this.size = size;
  }

  /** A stream of the whole blob, or null when its start is no longer kept (read it after commit). */
  reader(): Readable | null {
    if (this.state === 'failed' || this.base > 0) return null;
    const reader = new BroadcastReader(this);
    this.readers.add(reader);
    reader.once('close', () => {
      this.readers.delete(reader);
      this.progressed();
      this.trim();
    });
    return reader;
  }

  append(chunk: Buffer): void {
    if (this.held) this.release(this.held);
    this.held = chunk;
  }

  /**
   * Null when every attached reader is within {@link READER_LAG_BYTES}; else a promise the fetch
   * waits on before its next chunk: it resolves once they caught up, or once the wait used up the
   * budget of some (those are detached).
   */
  backpressure(): Promise<void> | null {
    const laggards = this.laggards();
    if (laggards.length === 0) return null;
    return new Promise((resolve) => {
      const budget = Math.max(0, Math.min(...laggards.map((reader) => reader.waitBudgetMs)));
      const since = performance.now();
      const timer = setTimeout(() => this.resume(), budget);
      this.waiting = { since, resume: resolve, timer };
    });
  }

  /** A reader read on (or left): the fetch goes on if nobody is too far behind any more. */
  progressed(): void {
    if (this.waiting && this.laggards().length === 0) this.resume();
  }

  private resume(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = null;
    clearTimeout(waiting.timer);
    const waited = performance.now() - waiting.since;
    for (const reader of this.laggards()) {
      reader.waitBudgetMs -= waited;
      if (reader.waitBudgetMs <= 0) reader.detach();
    }
    waiting.resume();
  }

  private laggards(): BroadcastReader[] {
    const behind: BroadcastReader[] = [];
    for (const reader of this.readers)
      if (!reader.detached && this.released - reader.offset > READER_LAG_BYTES) behind.push(reader);
    return behind;
  }

  /** The blob is verified and visible: readers get the last chunk, detached ones the store. */
  commit(readRest: ReadRest): void {
    if (this.held) this.release(this.held);
    this.held = null;
    this.state = 'committed';
    this.readRest = readRest;
    for (const reader of this.readers) reader.wake();
  }

  /** The fetch failed: every reader's body errors before its end. */
  fail(error: Error): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.error = error;
    this.chunks = [];
    this.held = null;
    this.resume();
    for (const reader of this.readers) reader.destroy(error);
  }

  private release(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.released += chunk.length;
    for (const reader of this.readers) reader.wake();
    this.trim();
  }

  /** Drops chunks no attached reader needs (the first REPLAY_BYTES stay for late readers). */
  private trim(): void {
    if (this.released <= REPLAY_BYTES) return;
    let needed = this.released;
    for (const reader of this.readers) if (!reader.detached) needed = Math.min(needed, reader.offset);
    while (this.chunks.length > 0) {
      const first = this.chunks[0] as Buffer;
      if (this.base + first.length > needed) break;
      this.chunks.shift();
      this.base += first.length;
    }
  }

  /** Bytes from `offset` on that are released, as slices of the shared chunks. */
  slicesFrom(offset: number): Buffer[] {
    const slices: Buffer[] = [];
    let position = this.base;
    for (const chunk of this.chunks) {
      const end = position + chunk.length;
      if (end > offset) slices.push(offset > position ? chunk.subarray(offset - position) : chunk);
      position = end;
    }
    return slices;
  }

  /** For a reader: what comes next once its cursor reached the released bytes. */
  status(): { state: 'open' | 'committed' | 'failed'; error: Error | null; readRest: ReadRest | null } {
    return { state: this.state, error: this.error, readRest: this.readRest };
  }

  get releasedBytes(): number {
    return this.released;
  }
}

/** One client's view of a {@link BlobBroadcast}: shared chunks while it keeps up, then the store. */
class BroadcastReader extends Readable {
  offset = 0;
  detached = false;
  /** What is left of the time the fetch may wait for this reader. */
  waitBudgetMs = WAIT_BUDGET_MS;
  private readonly broadcast: BlobBroadcast;
  private waiting = false;
  private rest: Readable | null = null;

  constructor(broadcast: BlobBroadcast) {
    super({ highWaterMark: 256 * 1024 });
    this.broadcast = broadcast;
  }

  override _read(): void {
    if (this.rest) {
      this.rest.resume();
      return;
    }
    this.waiting = false;
    if (!this.detached) {
      for (const slice of this.broadcast.slicesFrom(this.offset)) {
        this.offset += slice.length;
        if (!this.push(slice)) {
          this.broadcast.progressed();
          return;
        }
      }
      this.broadcast.progressed();
    }
    if (this.detached || this.offset >= this.broadcast.releasedBytes) {
      const { state, readRest } = this.broadcast.status();
      if (state === 'committed' && !this.detached) {
        this.push(null);
        return;
      }
      if (state === 'committed' && readRest) {
        this.readFromStore(readRest);
        return;
      }
      this.waiting = true;
    }
  }

  /** New bytes or the end: read on if this reader was waiting for them. */
  wake(): void {
    if (this.waiting && !this.destroyed) this._read();
  }

  /** Too far behind: read the rest from the store once the blob is committed. */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
  }

  private readFromStore(readRest: ReadRest): void {
    this.waiting = false;
    const started = this.offset;
    readRest(started).then(
      (body) => {
        if (this.destroyed) {
          body?.destroy();
          return;
        }
        if (!body) {
          this.push(null);
          return;
        }
        this.rest = body;
        body.on('data', (chunk: Buffer) => {
          this.offset += chunk.length;
          if (!this.push(chunk)) body.pause();
        });
        body.once('end', () => this.push(null));
        body.once('error', (error) => this.destroy(error));
        this.once('close', () => body.destroy());
      },
      (error: Error) => this.destroy(error),
    );
  }
}
