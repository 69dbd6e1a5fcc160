import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { GetResult } from '../store/object-store.ts';

/**
 * Sends a stored object as the reply body, with the status and headers already set on `reply`.
 * When the store can copy the bytes itself through reused buffers (fs), the response is written
 * directly: Fastify's stream sending would pipe a read stream that allocates a buffer per chunk.
 * Fastify's onResponse hooks (metrics, the request log) still run when the response finishes;
 * its onSend hooks do not, so what they add is added here.
 */
export async function sendObject(reply: FastifyReply, object: GetResult): Promise<FastifyReply | undefined> {
  if (!object.copyTo) return reply.send(object.body);
  reply.hijack();
  const response = reply.raw;
  const headers = reply.getHeaders() as OutgoingHttpHeaders;
  // The app's onSend hook asks clients to reconnect elsewhere once shutdown began; so does this.
  if (!reply.server.server.listening) headers.connection = 'close';
  response.writeHead(reply.statusCode, headers);
  try {
    await object.copyTo(response);
    response.end();
  } catch (error) {
    // Headers are gone already: all that is left is to cut the connection so the client sees it.
    reply.log.warn({ err: error }, 'object download interrupted');
    response.destroy();
  }
  return undefined;
}
