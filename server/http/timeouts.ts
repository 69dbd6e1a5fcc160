import type { ServerOptions } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HttpConfig } from '../config/types.ts';
import type { Metrics } from '../observability/metrics.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler streams the body itself: only the idle timeout applies, never the deadline. */
    streamedBody?: boolean;
  }
}

/** Route config of a handler that streams its body to the store (OCI blobs). */
export const STREAMED_BODY = { streamedBody: true } as const;

/**
 * Fastify options for the header phase. Node closes a connection that has not sent its complete
 * headers within `headersTimeoutSeconds` (408), checking every `connectionsCheckingInterval`, so the
 * bound is the timeout plus at most one second. There is deliberately no whole-request deadline
 * (`requestTimeout`): a 1 GiB blob over a slow link may take an hour; bodies are bounded by
 * `watchBodies` instead.
 */
export function serverTimeouts(http: HttpConfig): { http: ServerOptions; requestTimeout: number } {
  const headersTimeout = http.headersTimeoutSeconds * 1000;
  return {
    http: { headersTimeout, requestTimeout: 0, connectionsCheckingInterval: Math.min(1000, headersTimeout) },
    requestTimeout: 0,
  };
}

export type BodyTimeoutReason = 'idle' | 'deadline';

interface WatchedBody {
  request: FastifyRequest;
  reply: FastifyReply;
  socket: Socket;
  bytesRead: number;
  lastProgress: number;
  deadline: number;
}

/**
 * Bounds how long a client may take to send a request body:
 * - idle: no byte arrived for `bodyIdleTimeoutSeconds` while wharf was waiting for one. When wharf
 *   itself is the slow side (a store write applying backpressure), bytes wait unread in the request
 *   stream's buffer and the body does not count as idle.
 * - deadline: a body Fastify buffers in memory (JSON, forms, cargo publish) must be complete within
 *   `bodyTimeoutSeconds`; routes marked `STREAMED_BODY` have no deadline.
 * Either way the client gets a bare 408 if no answer was started, and the connection is destroyed:
 * the handler's read fails, so an OCI upload keeps the state its earlier requests saved.
 */
export function watchBodies(app: FastifyInstance, http: HttpConfig, metrics: Metrics): void {
  const idleMs = http.bodyIdleTimeoutSeconds * 1000;
  const deadlineMs = http.bodyTimeoutSeconds * 1000;
  const tickMs = Math.max(100, Math.min(1000, Math.min(idleMs, deadlineMs) / 4));
  const bodies = new Set<WatchedBody>();
  let timer: NodeJS.Timeout | undefined;

  const expire = (body: WatchedBody, reason: BodyTimeoutReason) => {
    bodies.delete(body);
    metrics.bodyTimeouts.inc({ reason });
    body.request.log.warn(
      { reason, limitSeconds: (reason === 'idle' ? idleMs : deadlineMs) / 1000 },
      'request body timed out: connection closed',
    );
    const { socket } = body;
    if (!body.reply.raw.headersSent && socket.writable)
      socket.write('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  };

  const tick = () => {
    const now = Date.now();
    for (const body of bodies) {
      const { request, socket } = body;
      if (request.raw.complete || socket.destroyed) {
        bodies.delete(body);
        continue;
      }
      if (now >= body.deadline) {
        expire(body, 'deadline');
        continue;
      }
      // bytesRead counts what the socket received even while Node's parser consumes it natively.
      if (socket.bytesRead !== body.bytesRead || request.raw.readableLength > 0) {
        body.bytesRead = socket.bytesRead;
        body.lastProgress = now;
      } else if (now - body.lastProgress >= idleMs) {
        expire(body, 'idle');
      }
    }
    if (bodies.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  app.addHook('onRequest', async (request, reply) => {
    const raw = request.raw;
    const socket = raw.socket;
    // Injected requests (light-my-request) have no network socket and nothing to wait for.
    if (!(socket instanceof Socket) || raw.complete || !hasBody(request)) return;
    const now = Date.now();
    bodies.add({
      request,
      reply,
      socket,
      bytesRead: socket.bytesRead,
      lastProgress: now,
      deadline: request.routeOptions.config.streamedBody ? Number.POSITIVE_INFINITY : now + deadlineMs,
    });
    if (!timer) {
      timer = setInterval(tick, tickMs);
      timer.unref();
    }
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    bodies.clear();
  });
}

function hasBody(request: FastifyRequest): boolean {
  if (request.headers['transfer-encoding'] !== undefined) return true;
  const length = Number(request.headers['content-length'] ?? 0);
  return Number.isFinite(length) && length > 0;
}
