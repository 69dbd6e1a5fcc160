import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreConfig } from '../../server/config/types.ts';
import { readJson, updateJson } from '../../server/store/json-doc.ts';
import {
  InvalidRangeError,
  MIN_PART_SIZE,
  NoSuchUploadError,
  type ObjectStore,
  PreconditionFailedError,
} from '../../server/store/object-store.ts';

export interface StoreUnderTest {
  store: ObjectStore;
  /** The configuration a second process would use to open the same store. */
  config: StoreConfig;
  cleanup(): Promise<void>;
}

/**
 * The contract every ObjectStore driver must honour, in the spirit of distribution's storage-driver
 * testsuites: one suite, run against each backend (fs here, MinIO for s3).
 */
export function storeContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: ObjectStore;
    // Each test works under its own prefix so that listings are not disturbed by other tests.
    const scope = () => `t-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      subject = await open();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.cleanup();
    });

    it('stores, reads, heads and deletes an object', async () => {
      const key = `${scope()}/hello.txt`;
      expect(await store.get(key)).toBeNull();
      expect(await store.head(key)).toBeNull();
      const { etag } = await store.put(key, 'hello world', { contentType: 'text/plain' });
      expect(etag).toBeTruthy();
      const object = await store.get(key);
      expect(object).not.toBeNull();
      expect(await text(object!.body)).toBe('hello world');
      expect(object!.size).toBe(11);
      expect(object!.etag).toBe(etag);
      const info = await store.head(key);
      expect(info?.size).toBe(11);
      expect(info?.etag).toBe(etag);
      expect(info?.lastModified).toBeInstanceOf(Date);
      await store.delete(key);
      expect(await store.get(key)).toBeNull();
      await store.delete(key); // deleting what is gone is fine
    });

    it('revalidates by ETag: a conditional get sends nothing while the object is unchanged', async () => {
      const key = `${scope()}/doc.json`;
      expect(await store.get(key, { ifNoneMatch: '"anything"' })).toBeNull();
      const first = await store.put(key, '{"v":1}', { contentType: 'application/json' });
      const unchanged = await store.get(key, { ifNoneMatch: first.etag });
      expect(unchanged?.notModified).toBe(true);
      expect(unchanged?.etag).toBe(first.etag);
      expect((await buffer(unchanged!.body)).length).toBe(0);
      const second = await store.put(key, '{"v":2}', { contentType: 'application/json' });
      expect(second.etag).not.toBe(first.etag);
      const changed = await store.get(key, { ifNoneMatch: first.etag });
      expect(changed?.notModified).toBeUndefined();
      expect(changed?.etag).toBe(second.etag);
      expect(await text(changed!.body)).toBe('{"v":2}');
      const other = await store.get(key, { ifNoneMatch: '"not-this-one"' });
      expect(await text(other!.body)).toBe('{"v":2}');
      await store.delete(key);
      expect(await store.get(key, { ifNoneMatch: second.etag })).toBeNull();
    });

    it('streams a body of unknown length and reads it back byte for byte', async () => {
      const key = `${scope()}/stream.bin`;
      const data = randomBytes(3 * 1024 * 1024 + 17);
      async function* chunks() {
        for (let offset = 0; offset < data.length; offset += 65536)
          yield data.subarray(offset, offset + 65536);
      }
      await store.put(key, Readable.from(chunks()));
      const object = await store.get(key);
      expect((await buffer(object!.body)).equals(data)).toBe(true);
    });

    it('refuses a streamed body shorter than the announced length and keeps nothing', async () => {
      const key = `${scope()}/short.bin`;
      await expect(
        store.put(key, Readable.from([Buffer.alloc(1000)]), { contentLength: 2000 }),
      ).rejects.toThrow();
      expect(await store.head(key)).toBeNull();
    });

    it('serves byte ranges and refuses ranges past the end', async () => {
      const key = `${scope()}/range.txt`;
      await store.put(key, '0123456789');
      const middle = await store.get(key, { range: { start: 2, end: 5 } });
      expect(await text(middle!.body)).toBe('2345');
      expect(middle!.range).toEqual({ start: 2, end: 5 });
      const tail = await store.get(key, { range: { start: 7 } });
      expect(await text(tail!.body)).toBe('789');
      const clipped = await store.get(key, { range: { start: 8, end: 100 } });
      expect(await text(clipped!.body)).toBe('89');
      await expect(store.get(key, { range: { start: 10 } })).rejects.toBeInstanceOf(InvalidRangeError);
    });

    it('gives a new ETag to every new version of an object', async () => {
      const key = `${scope()}/versions`;
      const first = await store.put(key, 'one');
      const second = await store.put(key, 'two');
      expect(second.etag).not.toBe(first.etag);
      expect((await store.head(key))!.etag).toBe(second.etag);
    });

    it('creates with If-None-Match: * only when the key is free', async () => {
      const key = `${scope()}/create-once`;
      await store.put(key, 'first', { ifNoneMatch: '*' });
      await expect(store.put(key, 'second', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      expect(await text((await store.get(key))!.body)).toBe('first');
    });

    it('replaces with If-Match only when the ETag is current', async () => {
      const key = `${scope()}/cas`;
      const { etag } = await store.put(key, 'v1');
      const { etag: etag2 } = await store.put(key, 'v2', { ifMatch: etag });
      await expect(store.put(key, 'v3', { ifMatch: etag })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(await text((await store.get(key))!.body)).toBe('v2');
      await expect(store.put(`${key}-missing`, 'x', { ifMatch: etag2 })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      expect(await store.head(`${key}-missing`)).toBeNull();
    });

    it('keeps conditions and atomicity for a put with durable: false (only the fsync is skipped)', async () => {
      const key = `${scope()}/session.json`;
      const { etag } = await store.put(key, '{"offset":0}', { ifNoneMatch: '*', durable: false });
      await expect(store.put(key, '{}', { ifNoneMatch: '*', durable: false })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      const { etag: next } = await store.put(key, '{"offset":5}', { ifMatch: etag, durable: false });
      await expect(store.put(key, '{"offset":9}', { ifMatch: etag, durable: false })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      const object = await store.get(key);
      expect(await text(object!.body)).toBe('{"offset":5}');
      expect(object!.etag).toBe(next);
    });

    it('loses no update when 50 writers increment one counter concurrently', async () => {
      const key = `${scope()}/counter.json`;
      await Promise.all(
        Array.from({ length: 50 }, () =>
          updateJson<{ n: number }>(store, key, (current) => ({ n: (current?.n ?? 0) + 1 }), {
            attempts: 500,
          }),
        ),
      );
      expect((await readJson<{ n: number }>(store, key))?.value.n).toBe(50);
    });

    it('lists keys in order, by prefix, with a delimiter, and page by page', async () => {
      const root = scope();
      // `-` < `/` < `0`: folded prefixes must sort among the keys exactly as S3 sorts them. No key
      // is also the "folder" of other keys (`a` beside `a/b`): MinIO cannot list both (see
      // object-store.ts), so wharf's key layouts avoid it and the contract does not ask for it.
      const keys = [`${root}/a-z`, `${root}/a/b`, `${root}/a/c/d`, `${root}/a0`, `${root}/b/x`, `${root}/c`];
      for (const key of keys) await store.put(key, key);

      const all = await store.list({ prefix: `${root}/` });
      expect(all.objects.map((o) => o.key)).toEqual([...keys].sort());
      expect(all.nextContinuationToken).toBeUndefined();
      expect(all.objects.find((o) => o.key === `${root}/a/b`)?.size).toBe(`${root}/a/b`.length);

      const top = await store.list({ prefix: `${root}/`, delimiter: '/' });
      expect(top.objects.map((o) => o.key)).toEqual([`${root}/a-z`, `${root}/a0`, `${root}/c`]);
      expect(top.prefixes).toEqual([`${root}/a/`, `${root}/b/`]);

      const partial = await store.list({ prefix: `${root}/a`, delimiter: '/' });
      expect(partial.objects.map((o) => o.key)).toEqual([`${root}/a-z`, `${root}/a0`]);
      expect(partial.prefixes).toEqual([`${root}/a/`]);

      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({
          prefix: `${root}/`,
          maxKeys: 2,
          ...(token ? { continuationToken: token } : {}),
        });
        seen.push(...page.objects.map((o) => o.key));
        token = page.nextContinuationToken;
        pages++;
      } while (token && pages < 10);
      expect(seen).toEqual([...keys].sort());
      expect(pages).toBe(3);

      const after = await store.list({ prefix: `${root}/`, startAfter: `${root}/a/b` });
      expect(after.objects.map((o) => o.key)).toEqual([
        `${root}/a/c/d`,
        `${root}/a0`,
        `${root}/b/x`,
        `${root}/c`,
      ]);

      for (const key of keys) await store.delete(key);
      const emptied = await store.list({ prefix: `${root}/`, delimiter: '/' });
      expect(emptied.objects).toEqual([]);
      expect(emptied.prefixes).toEqual([]);
    });

    it('joins multipart uploads in part order and shows nothing before completion', async () => {
      const key = `${scope()}/multipart.bin`;
      const part1 = randomBytes(MIN_PART_SIZE);
      const part2 = randomBytes(1234);
      const uploadId = await store.createMultipart(key);
      // Parts may arrive out of order; the part numbers decide the order.
      const second = await store.uploadPart(key, uploadId, 2, part2, part2.length);
      const first = await store.uploadPart(key, uploadId, 1, Readable.from([part1]), part1.length);
      expect(await store.head(key)).toBeNull();
      await store.completeMultipart(key, uploadId, [
        { partNumber: 1, etag: first.etag },
        { partNumber: 2, etag: second.etag },
      ]);
      const object = await store.get(key);
      expect(object!.size).toBe(part1.length + part2.length);
      expect((await buffer(object!.body)).equals(Buffer.concat([part1, part2]))).toBe(true);
    });

    it('completes with re-uploaded parts and with a subset of the parts, and refuses a replaced ETag', async () => {
      const key = `${scope()}/reuploaded.bin`;
      const [a, b, b2, c] = [0, 1, 2, 3].map(() => randomBytes(MIN_PART_SIZE));
      const uploadId = await store.createMultipart(key);
      const first = await store.uploadPart(key, uploadId, 1, a!, MIN_PART_SIZE);
      const second = await store.uploadPart(key, uploadId, 2, Readable.from([b!]), MIN_PART_SIZE);
      const third = await store.uploadPart(key, uploadId, 3, c!, MIN_PART_SIZE);
      // Part 2 sent again with other bytes: the new version wins, the old ETag no longer completes.
      const secondAgain = await store.uploadPart(key, uploadId, 2, b2!, MIN_PART_SIZE);
      expect(secondAgain.etag).not.toBe(second.etag);
      await expect(
        store.completeMultipart(key, uploadId, [
          { partNumber: 1, etag: first.etag },
          { partNumber: 2, etag: second.etag },
          { partNumber: 3, etag: third.etag },
        ]),
      ).rejects.toThrow();
      await store.completeMultipart(key, uploadId, [
        { partNumber: 1, etag: first.etag },
        { partNumber: 2, etag: secondAgain.etag },
        { partNumber: 3, etag: third.etag },
      ]);
      expect((await buffer((await store.get(key))!.body)).equals(Buffer.concat([a!, b2!, c!]))).toBe(true);

      const subsetKey = `${scope()}/subset.bin`;
      const subsetId = await store.createMultipart(subsetKey);
      const p1 = await store.uploadPart(subsetKey, subsetId, 1, a!, MIN_PART_SIZE);
      await store.uploadPart(subsetKey, subsetId, 2, b!, MIN_PART_SIZE);
      const p3 = await store.uploadPart(subsetKey, subsetId, 3, c!, MIN_PART_SIZE);
      await store.completeMultipart(subsetKey, subsetId, [
        { partNumber: 1, etag: p1.etag },
        { partNumber: 3, etag: p3.etag },
      ]);
      expect((await buffer((await store.get(subsetKey))!.body)).equals(Buffer.concat([a!, c!]))).toBe(true);
    });

    it('refuses a multipart upload whose non-final part is under the minimum', async () => {
      const key = `${scope()}/small-parts.bin`;
      const uploadId = await store.createMultipart(key);
      const a = await store.uploadPart(key, uploadId, 1, Buffer.alloc(1024), 1024);
      const b = await store.uploadPart(key, uploadId, 2, Buffer.alloc(1024), 1024);
      await expect(
        store.completeMultipart(key, uploadId, [
          { partNumber: 1, etag: a.etag },
          { partNumber: 2, etag: b.etag },
        ]),
      ).rejects.toThrow();
      expect(await store.head(key)).toBeNull();
      await store.abortMultipart(key, uploadId);
    });

    it('drops an aborted multipart upload', async () => {
      const key = `${scope()}/aborted.bin`;
      const uploadId = await store.createMultipart(key);
      const part = await store.uploadPart(key, uploadId, 1, Buffer.alloc(100), 100);
      await store.abortMultipart(key, uploadId);
      await expect(
        store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: part.etag }]),
      ).rejects.toThrow();
      expect(await store.head(key)).toBeNull();
    });

    it('shows nothing of a write whose process was killed before it committed', async () => {
      const key = `${scope()}/crashed.bin`;
      const code = await runCrashWriter(subject.config, key);
      expect(code).toBe('SIGKILL');
      expect(await store.head(key)).toBeNull();
      expect((await store.list({ prefix: key })).objects).toEqual([]);
      // And the key is still usable afterwards.
      await store.put(key, 'after the crash', { ifNoneMatch: '*' });
      expect(await text((await store.get(key))!.body)).toBe('after the crash');
    });

    it('refuses a streamed body longer than the announced length and keeps nothing', async () => {
      const key = `${scope()}/long.bin`;
      await expect(
        store.put(key, Readable.from([Buffer.alloc(1500), Buffer.alloc(1500)]), { contentLength: 2000 }),
      ).rejects.toThrow();
      await expect(store.put(key, Buffer.alloc(10), { contentLength: 9 })).rejects.toThrow();
      expect(await store.head(key)).toBeNull();
    });

    it('stores 0-byte objects, from a buffer and from an empty stream', async () => {
      const root = scope();
      await store.put(`${root}/empty-buffer`, '');
      await store.put(`${root}/empty-stream`, Readable.from([]), { contentLength: 0 });
      await store.put(`${root}/empty-unsized`, Readable.from([]));
      for (const name of ['empty-buffer', 'empty-stream', 'empty-unsized']) {
        const object = await store.get(`${root}/${name}`);
        expect(object?.size).toBe(0);
        expect((await buffer(object!.body)).length).toBe(0);
        expect((await store.head(`${root}/${name}`))?.size).toBe(0);
        await expect(store.get(`${root}/${name}`, { range: { start: 0 } })).rejects.toBeInstanceOf(
          InvalidRangeError,
        );
      }
      const listed = await store.list({ prefix: `${root}/` });
      expect(listed.objects.map((o) => o.size)).toEqual([0, 0, 0]);
    });

    it('keeps keys with URL-special characters distinct, listed in byte order', async () => {
      const root = scope();
      const names = [
        'a+b',
        'a b'.replace(' ', '%20'), // a literal "%20", not a space
        'a%2Fb', // a literal "%2F", not a slash
        'a:b',
        'a@b',
        'a~b',
        'a=b&c',
        "a!$'()*,;b",
        'a#b?c',
        'a[b]{c}|d',
        'a"<b>\\^`',
        'a%',
        'a',
        'a.b/c',
      ];
      const keys = names.map((name) => `${root}/${name}`);
      for (const key of keys) await store.put(key, key, { ifNoneMatch: '*' });
      for (const key of keys) {
        expect(await text((await store.get(key))!.body)).toBe(key);
        expect((await store.head(key))?.size).toBe(key.length);
      }
      const listed = await store.list({ prefix: `${root}/` });
      expect(listed.objects.map((o) => o.key)).toEqual([...keys].sort());
      const folded = await store.list({ prefix: `${root}/a`, delimiter: '/' });
      expect(folded.prefixes).toEqual([`${root}/a.b/`]);
      expect(await store.head(`${root}/a b`.replace(' ', '+'))).not.toBeNull(); // "+" stays "+"
      expect(await store.head(`${root}/a/b`)).toBeNull(); // "%2F" never became a slash
      await store.delete(`${root}/a+b`);
      expect(await store.head(`${root}/a+b`)).toBeNull();
      expect(await store.head(`${root}/a%20b`)).not.toBeNull();
    });

    it('lists more than 1000 keys across pages, with and without a delimiter', async () => {
      const root = scope();
      const keys = Array.from({ length: 1003 }, (_, i) => `${root}/k${String(i).padStart(4, '0')}`);
      keys.push(`${root}/m/1`, `${root}/m/2`, `${root}/n/1`);
      await inBatches(keys, 16, (key) => store.put(key, ''));

      const first = await store.list({ prefix: `${root}/` });
      expect(first.objects).toHaveLength(1000);
      expect(first.nextContinuationToken).toBeTruthy();
      const second = await store.list({
        prefix: `${root}/`,
        continuationToken: first.nextContinuationToken!,
      });
      expect(second.nextContinuationToken).toBeUndefined();
      expect([...first.objects, ...second.objects].map((o) => o.key)).toEqual([...keys].sort());

      // Pages of 501 with folding: the second page ends on the folded prefixes.
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({
          prefix: `${root}/`,
          delimiter: '/',
          maxKeys: 501,
          ...(token ? { continuationToken: token } : {}),
        });
        seen.push(...page.objects.map((o) => o.key), ...page.prefixes);
        token = page.nextContinuationToken;
        pages++;
      } while (token && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual([...keys.slice(0, 1003), `${root}/m/`, `${root}/n/`]);

      // A page that ends exactly on the last entry says there is no more.
      const exact = await store.list({ prefix: `${root}/`, delimiter: '/', startAfter: `${root}/k1000` });
      expect(exact.objects.map((o) => o.key)).toEqual([`${root}/k1001`, `${root}/k1002`]);
      expect(exact.prefixes).toEqual([`${root}/m/`, `${root}/n/`]);
      const full = await store.list({
        prefix: `${root}/`,
        delimiter: '/',
        startAfter: `${root}/k1000`,
        maxKeys: 4,
      });
      expect(full.nextContinuationToken).toBeUndefined();
    });

    it('gives the same ETag in put, head, get and list, and a multipart ETag works with If-Match', async () => {
      const root = scope();
      const { etag } = await store.put(`${root}/plain`, 'plain');
      expect((await store.head(`${root}/plain`))?.etag).toBe(etag);
      const part1 = randomBytes(MIN_PART_SIZE);
      const uploadId = await store.createMultipart(`${root}/joined`);
      const p1 = await store.uploadPart(`${root}/joined`, uploadId, 1, part1, part1.length);
      const p2 = await store.uploadPart(`${root}/joined`, uploadId, 2, 'tail', 4);
      const joined = await store.completeMultipart(`${root}/joined`, uploadId, [
        { partNumber: 1, etag: p1.etag },
        { partNumber: 2, etag: p2.etag },
      ]);
      const listed = await store.list({ prefix: `${root}/` });
      expect(listed.objects.map((o) => [o.key, o.etag])).toEqual([
        [`${root}/joined`, joined.etag],
        [`${root}/plain`, etag],
      ]);
      const got = await store.get(`${root}/joined`);
      expect(got?.etag).toBe(joined.etag);
      got?.body.resume();
      await store.put(`${root}/joined`, 'replaced', { ifMatch: joined.etag });
      await expect(store.put(`${root}/joined`, 'again', { ifMatch: joined.etag })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
    });

    it('answers NoSuchUploadError for parts and completion of an aborted upload', async () => {
      const key = `${scope()}/gone.bin`;
      const uploadId = await store.createMultipart(key);
      const part = await store.uploadPart(key, uploadId, 1, 'x', 1);
      await store.abortMultipart(key, uploadId);
      await expect(store.uploadPart(key, uploadId, 2, 'y', 1)).rejects.toBeInstanceOf(NoSuchUploadError);
      await expect(
        store.completeMultipart(key, uploadId, [{ partNumber: 1, etag: part.etag }]),
      ).rejects.toBeInstanceOf(NoSuchUploadError);
      await store.abortMultipart(key, uploadId); // aborting twice is fine
    });

    it('applies conditions to a streamed body larger than one upload part', async () => {
      const key = `${scope()}/big-conditional.bin`;
      const data = randomBytes(12 * 1024 * 1024 + 5);
      const chunked = (bytes: Buffer) =>
        Readable.from(
          (function* () {
            for (let offset = 0; offset < bytes.length; offset += 256 * 1024)
              yield bytes.subarray(offset, offset + 256 * 1024);
          })(),
        );
      const { etag } = await store.put(key, chunked(data), { ifNoneMatch: '*' });
      await expect(
        store.put(key, chunked(randomBytes(9 * 1024 * 1024)), { ifNoneMatch: '*' }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      await expect(
        store.put(key, chunked(randomBytes(9 * 1024 * 1024)), {
          ifMatch: '"0123456789abcdef0123456789abcdef"',
        }),
      ).rejects.toBeInstanceOf(PreconditionFailedError);
      const kept = await store.get(key);
      expect(kept?.etag).toBe(etag);
      expect((await buffer(kept!.body)).equals(data)).toBe(true);
      const replacement = randomBytes(10 * 1024 * 1024);
      await store.put(key, chunked(replacement), { ifMatch: etag, contentLength: replacement.length });
      expect((await buffer((await store.get(key))!.body)).equals(replacement)).toBe(true);
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}

/**
 * Runs test/store/crash-writer.ts, which streams `sendBytes` of an object announced as `totalBytes`
 * (3 of 8 MiB by default) and SIGKILLs itself mid-write; resolves to the signal that ended it.
 */
export function runCrashWriter(
  config: StoreConfig,
  key: string,
  sizes: { sendBytes: number; totalBytes: number } = {
    sendBytes: 3 * 1024 * 1024,
    totalBytes: 8 * 1024 * 1024,
  },
): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        new URL('./crash-writer.ts', import.meta.url).pathname,
        JSON.stringify(config),
        key,
        String(sizes.sendBytes),
        String(sizes.totalBytes),
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: process.env,
      },
    );
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

async function inBatches<T>(items: T[], size: number, action: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(action));
}
