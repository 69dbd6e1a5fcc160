import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { startWharfProcess } from '../support/spawn-wharf.ts';

it('finishes a request that is in flight when SIGTERM arrives, then exits 0', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wharf-shutdown-'));
  const server = await startWharfProcess({ WHARF_DATA_DIR: dataDir, WHARF_SIGNUP: 'open' });
  try {
    const { port } = new URL(server.url);
    const body = JSON.stringify({ password: 'in-flight-password-123' });
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let response = '';
    socket.on('data', (chunk) => {
      response += chunk.toString();
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Half of the request body now, the rest after the server was told to stop.
    socket.write(
      `POST /ktra/api/v1/new_user/late HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const exit = server.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    socket.write(body.slice(10));
    // The server answers, then closes the connection: it is shutting down.
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toContain('"token"');
    expect(await exit).toBe(0);
    expect(server.output()).toContain('shut down cleanly');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
