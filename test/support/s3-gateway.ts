import { createHash, createHmac } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

export interface S3Gateway {
  /** http://127.0.0.1:PORT: point an S3 client here, with any credentials. */
  endpoint: string;
  /** How many requests arrived with a condition that the gateway dropped. */
  droppedConditions(): number;
  /**
   * Loses the answers to the next `count` conditional PUTs (or completions of uploads) after the backend has applied them (the
   * connection drops), as a flaky network between a server and S3 does.
   */
  loseConditionalAnswers(count: number): void;
  /** How many answers the gateway lost on purpose. */
  lostAnswers(): number;
  stop(): Promise<void>;
}

export interface S3GatewayOptions {
  /** The real S3 server behind the gateway and the credentials the gateway uses there. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /**
   * `all`: an S3-compatible gateway of the older kind (written before S3 had conditional writes)
   * that forwards everything except the headers it does not know, If-Match and If-None-Match.
   * `complete-multipart`: one that implemented them for PutObject but not for multipart uploads.
   */
  dropConditions?: 'all' | 'complete-multipart' | 'none';
}

/**
 * A real HTTP proxy in front of a real S3 server (MinIO in the tests) that accepts S3 requests,
 * re-signs each with SigV4 for the backend with its own credentials, and forwards it, minus what
 * `options` tells it to drop; so what a client sees is exactly what such a gateway would answer.
 */
export async function startS3Gateway(backend: S3GatewayOptions): Promise<S3Gateway> {
  const target = new URL(backend.endpoint);
  const signer = new SignatureV4({
    credentials: { accessKeyId: backend.accessKeyId, secretAccessKey: backend.secretAccessKey },
    region: backend.region,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  let dropped = 0;
  let lost = 0;
  let toLose = 0;
  const dropConditions = backend.dropConditions ?? 'all';
  const server: Server = createServer(async (incoming, outgoing) => {
    try {
      const url = new URL(incoming.url ?? '/', 'http://gateway');
      const isComplete = incoming.method === 'POST' && url.searchParams.has('uploadId');
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(incoming.headers as IncomingHttpHeaders)) {
        if (value === undefined || UNSIGNED.has(name)) continue;
        const isCondition = name === 'if-match' || name === 'if-none-match';
        if (
          isCondition &&
          (dropConditions === 'all' || (dropConditions === 'complete-multipart' && isComplete))
        ) {
          dropped++;
          continue;
        }
        headers[name] = Array.isArray(value) ? value.join(',') : value;
      }
      const loseAnswer =
        (incoming.method === 'PUT' || isComplete) &&
        ('if-match' in headers || 'if-none-match' in headers) &&
        toLose > 0;
      if (loseAnswer) {
        toLose--;
        lost++;
      }
      headers.host = target.host;
      // Keep the client's payload hash (its body is forwarded unchanged), or stream unsigned.
      headers['x-amz-content-sha256'] ??= 'UNSIGNED-PAYLOAD';
      const query: Record<string, string | string[]> = {};
      for (const name of new Set(url.searchParams.keys())) {
        if (name.startsWith('X-Amz-')) continue; // a presigned request's own signature
        const values = url.searchParams.getAll(name);
        query[name] = values.length === 1 ? values[0]! : values;
      }
      const signed = await signer.sign({
        method: incoming.method ?? 'GET',
        protocol: target.protocol,
        hostname: target.hostname,
        port: Number(target.port),
        path: url.pathname,
        query,
        headers,
      });
      const search = new URLSearchParams();
      for (const [name, value] of Object.entries(query)) {
        for (const one of Array.isArray(value) ? value : [value]) search.append(name, one);
      }
      const forwarded = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: signed.method,
          path: url.pathname + (search.size ? `?${search.toString().replaceAll('+', '%20')}` : ''),
          headers: signed.headers,
        },
        (answer) => {
          if (loseAnswer) {
            answer.resume();
            answer.on('end', () => outgoing.socket?.destroy());
            return;
          }
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      forwarded.on('error', () => outgoing.destroy());
      incoming.pipe(forwarded);
    } catch {
      outgoing.writeHead(502).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    droppedConditions: () => dropped,
    lostAnswers: () => lost,
    loseConditionalAnswers: (count) => {
      toLose = count;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The client's own signature and connection headers, replaced or irrelevant on the backend side. */
const UNSIGNED = new Set([
  'authorization',
  'x-amz-date',
  'x-amz-security-token',
  'host',
  'connection',
  'keep-alive',
  'expect',
  'x-amz-user-agent',
  'user-agent',
  'amz-sdk-invocation-id',
  'amz-sdk-request',
]);

/** The hash the signer needs, on node:crypto (the SDK bundles its own, not exported). */
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}
