import { createHash, createHmac } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

export interface UnconditionalGateway {
  /** http://127.0.0.1:PORT: point an S3 client here, with any credentials. */
  endpoint: string;
  /** How many requests arrived with a condition that the gateway dropped. */
  droppedConditions(): number;
  stop(): Promise<void>;
}

/**
 * An S3-compatible gateway of the older kind (like the S3 gateways and proxies written before S3
 * had conditional writes): it accepts S3 requests, authenticates to the real backend with its own
 * credentials, and forwards everything except the conditional headers it does not know about,
 * If-Match and If-None-Match. It is a real HTTP proxy in front of a real MinIO, re-signing each
 * request with SigV4, so what a client sees is exactly what such a gateway answers.
 *
 * `only: 'complete-multipart'` drops the conditions only on CompleteMultipartUpload, as a gateway
 * that implemented them for PutObject but not for multipart uploads would.
 */
export async function startUnconditionalGateway(backend: {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  only?: 'complete-multipart';
}): Promise<UnconditionalGateway> {
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
  const server: Server = createServer(async (incoming, outgoing) => {
    try {
      const url = new URL(incoming.url ?? '/', 'http://gateway');
      const isComplete = incoming.method === 'POST' && url.searchParams.has('uploadId');
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(incoming.headers as IncomingHttpHeaders)) {
        if (value === undefined || UNSIGNED.has(name)) continue;
        if (
          (name === 'if-match' || name === 'if-none-match') &&
          (backend.only !== 'complete-multipart' || isComplete)
        ) {
          dropped++;
          continue;
        }
        headers[name] = Array.isArray(value) ? value.join(',') : value;
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
